"""SMS delivery-receipt ingestion pipeline."""
