"""Create Kafka ACLs through aiokafka: what ``kafka-acls.sh --add`` does, for tests and the local
secured broker (aiokafka's admin client has no ACL calls, and Kafka 4 only takes the flexible
CreateAcls v2+, which aiokafka's protocol module does not define).

`Acl` mirrors one ``kafka-acls`` binding: ``Acl("topic", "t", "READ", "processor")`` is
``kafka-acls --add --allow-principal User:processor --operation Read --topic t``.
`Acl.parse` reads such a line back, and `documented` finds the lines an operator is told to
run, so a test grants exactly what the documentation lists.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, NamedTuple

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

#: Kafka's codes (org.apache.kafka.common.resource / acl).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional-id": 5}
PATTERNS = {"literal": 3, "prefixed": 4}
OPERATIONS = {
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
ResourceType = Literal["topic", "group", "cluster", "transactional-id"]


class Acl(NamedTuple):
    """One ALLOW binding for `user` from any host."""

    resource_type: ResourceType
    name: str
    operation: str
    user: str
    pattern: Literal["literal", "prefixed"] = "literal"

    def kafka_acls(self) -> str:
        """The same binding as a ``kafka-acls.sh`` command line."""
        resource = {
            "topic": f"--topic {self.name}",
            "group": f"--group {self.name}",
            "cluster": "--cluster",
            "transactional-id": f"--transactional-id {self.name}",
        }[self.resource_type]
        pattern = " --resource-pattern-type prefixed" if self.pattern == "prefixed" else ""
        operation = "".join(word.capitalize() for word in self.operation.split("_"))
        return (
            f"kafka-acls --bootstrap-server $BROKER --command-config admin.properties --add "
            f"--allow-principal User:{self.user} --operation {operation} {resource}{pattern}"
        )

    @classmethod
    def parse(cls, line: str, user: str, names: Mapping[str, str] = {}) -> list[Acl]:
        """The bindings of one ``kafka-acls ... --add`` line (one per ``--operation``), for
        `user` whatever principal the line names; each placeholder of `names` (a whole word of
        a resource name: ``OUT`` in ``OUT.by-message``) is replaced by its value."""
        words = shlex.split(line)
        if not words or words[0] != "kafka-acls" or "--add" not in words:
            raise ValueError(f"not a kafka-acls --add line: {line!r}")
        placeholders = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")

        def named(name: str) -> str:
            return placeholders.sub(lambda m: names[m[1]], name) if names else name

        operations: list[str] = []
        resource: tuple[ResourceType, str] | None = None
        pattern: Literal["literal", "prefixed"] = "literal"
        for flag, value in zip(words, [*words[1:], ""], strict=True):
            if flag == "--operation":
                operations.append(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", value).upper())
            elif flag in ("--topic", "--group", "--transactional-id"):
                kind: ResourceType = flag.removeprefix("--")  # type: ignore[assignment]
                resource = (kind, named(value))
            elif flag == "--cluster":
                resource = ("cluster", "kafka-cluster")
            elif flag == "--resource-pattern-type":
                if value not in PATTERNS:
                    raise ValueError(f"unknown pattern type {value!r} in {line!r}")
                pattern = value  # type: ignore[assignment]
        unknown = [op for op in operations if op not in OPERATIONS]
        if resource is None or not operations or unknown:
            raise ValueError(f"no resource, or no or unknown --operation, in {line!r}")
        return [cls(resource[0], resource[1], op, user, pattern) for op in operations]


def documented(markdown: str, heading: str) -> list[str]:
    """The ``kafka-acls`` lines of the first fenced block after the first line of `markdown`
    that starts with `heading`."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise ValueError(f"no line starts with {heading!r}")
    fences = [i for i in range(start, len(lines)) if lines[i].startswith("```")][:2]
    if len(fences) < 2:
        raise ValueError(f"no fenced block after {heading!r}")
    block = lines[fences[0] + 1 : fences[1]]
    return [line for line in block if line.startswith("kafka-acls ")]


class _CreateAclsResponse(Response):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _CreateAclsResponseV3(_CreateAclsResponse):
    API_VERSION = 3


_CREATIONS = CompactArray(
    ("resource_type", Int8),
    ("resource_name", CompactString("utf-8")),
    ("resource_pattern_type", Int8),
    ("principal", CompactString("utf-8")),
    ("host", CompactString("utf-8")),
    ("operation", Int8),
    ("permission_type", Int8),
    ("tags", TaggedFields),
)


class _CreateAclsV2(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION: ClassVar[bool] = True
    API_KEY = 30
    API_VERSION = 2
    RESPONSE_TYPE = _CreateAclsResponse
    SCHEMA = Schema(("creations", _CREATIONS), ("tags", TaggedFields))


class _CreateAclsV3(_CreateAclsV2):
    API_VERSION = 3
    RESPONSE_TYPE = _CreateAclsResponseV3


class _CreateAcls(Request[_CreateAclsV2 | _CreateAclsV3]):  # type: ignore[misc]
    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self.creations = creations

    def build(self, request_struct_class: type[_CreateAclsV2 | _CreateAclsV3]) -> Any:
        return request_struct_class(self.creations, {})


async def create_acls(admin: AIOKafkaAdminClient, acls: Iterable[Acl]) -> None:
    """Add the bindings (an admin client of a super user); raise on any refused one. The
    broker applies them asynchronously: allow it a moment before relying on them."""
    acls = list(acls)
    creations: list[tuple[Any, ...]] = [
        (
            RESOURCE_TYPES[acl.resource_type],
            "kafka-cluster" if acl.resource_type == "cluster" else acl.name,
            PATTERNS[acl.pattern],
            f"User:{acl.user}",
            "*",
            OPERATIONS[acl.operation],
            3,  # ALLOW
            {},
        )
        for acl in acls
    ]
    response = await admin._send_request(_CreateAcls(creations))
    failed = [
        f"{acl}: error {code} {message}"
        for acl, (code, message, _tags) in zip(acls, response.results, strict=True)
        if code != 0
    ]
    if failed:
        raise RuntimeError("CreateAcls refused: " + "; ".join(failed))
    await asyncio.sleep(0.5)  # the authorizer learns them from the metadata log
