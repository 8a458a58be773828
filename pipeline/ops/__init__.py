"""Operations, shared by the processor and the ingress: metrics, probes, endpoints, logging, GC."""
