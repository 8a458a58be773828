"""tools/acls.py without a broker: `kafka-acls` lines read back into the bindings they add, and
found in a document's fenced blocks (how the secured tests take their ACLs from the docs)."""

from __future__ import annotations

import pytest

from tools.acls import Acl, documented


@pytest.mark.parametrize(
    "acl",
    [
        Acl("topic", "t", "DESCRIBE_CONFIGS", "u"),
        Acl("group", "g.dedupe", "READ", "u"),
        Acl("transactional-id", "g.dedupe.o.", "WRITE", "u", "prefixed"),
        Acl("cluster", "kafka-cluster", "IDEMPOTENT_WRITE", "u"),
    ],
)
def test_a_printed_line_reads_back_as_its_binding(acl: Acl) -> None:
    assert Acl.parse(acl.kafka_acls(), "u") == [acl]


def test_one_binding_per_operation_with_placeholders_replaced() -> None:
    line = (
        "kafka-acls --bootstrap-server $BROKER --add --allow-principal $P --operation Read "
        "--operation DescribeConfigs --topic OUT.by-message"
    )
    names = {"OUT": "events", "OUTPUT": "never"}
    assert Acl.parse(line, "processor", names) == [
        Acl("topic", "events.by-message", "READ", "processor"),
        Acl("topic", "events.by-message", "DESCRIBE_CONFIGS", "processor"),
    ]
    # Whole words only: a name that merely contains a placeholder is left alone.
    assert (
        Acl.parse(line.replace("OUT.", "OUTBOX."), "p", {"OUT": "x"})[0].name == "OUTBOX.by-message"
    )


@pytest.mark.parametrize(
    "line",
    [
        "kafka-acls --list --topic t",
        "kafka-acls --add --allow-principal $P --topic t",
        "kafka-acls --add --allow-principal $P --operation Read",
        "kafka-acls --add --allow-principal $P --operation Frobnicate --topic t",
        "kafka-topics --add --operation Read --topic t",
    ],
)
def test_what_is_not_a_whole_grant_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        Acl.parse(line, "u")


def test_documented_takes_the_block_after_its_heading() -> None:
    text = (
        "Topology `a` (tested):\n\n```\nP=User:p\n"
        "kafka-acls --add --operation Read --topic A\n```\n"
        "\nTopology `b`:\n\n```\nkafka-acls --add --operation Read --topic B\n"
        "kafka-acls --add --operation Write --topic B\n```\n"
    )
    assert documented(text, "Topology `a`") == ["kafka-acls --add --operation Read --topic A"]
    assert len(documented(text, "Topology `b`")) == 2
    with pytest.raises(ValueError, match="no line starts with"):
        documented(text, "Topology `c`")
