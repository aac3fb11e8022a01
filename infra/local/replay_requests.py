"""Replay captured DynamoDB requests against dynalite: a second, independent
validator of every request shape keygate sends (see README, "A second
emulator: dynalite").

    python infra/local/replay_requests.py [--endpoint URL] CAPTURE.jsonl...

Each capture line is {"operation": "UpdateItem", "body": {...}}: the request
body exactly as the SDK sent it (KEYGATE_REALISM_CAPTURE). The endpoint
defaults to $KEYGATE_DYNALITE_URL (infra/local/with-dynalite sets it).

What it does, in order:
1. reads every capture, dedupes the requests by shape (the operation and the
   body with each scalar value reduced to its type; expressions, placeholder
   names and attribute names kept), and refuses a capture missing any of
   REQUIRED_OPERATIONS, so an empty or broken capture cannot pass;
2. creates one dynalite table per distinct captured CreateTable (renamed),
   and waits until each is ACTIVE; every captured table name is rewritten to
   its own table's replacement, or to the first one's;
3. a canary: an UpdateItem whose paths overlap (SET a = :v, a.b = :v) must be
   refused with a ValidationException, or the check itself is broken;
4. sends every shape to dynalite, with what dynalite lacks reshaped
   (TransactWriteItems and TransactGetItems split into their actions, a
   ConditionCheck sent as an UpdateItem with only its key and condition,
   ReturnValuesOnConditionCheckFailure dropped) or skipped with the reason
   printed. A transaction's own limits (at most 100 actions, no item twice),
   which a split cannot show dynalite, are checked here.

The capture is deduped, so the items replayed requests touch are not what
they were in the test run: an update refused only for lacking a map its path
goes through ("The document path provided in the update expression is
invalid for update", which moto raises too) is sent again once those maps
are seeded. Any other ValidationException or SerializationException (or a
transaction breaking its limits) fails the run, printing the operation, the request sent and the
message; other errors (ConditionalCheckFailedException, ...) are expected.
Exit status: 0 clean, 1 a request refused or the canary accepted, 2 a
capture unusable or dynalite unreachable.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REQUIRED_OPERATIONS = ("GetItem", "UpdateItem", "Query", "TransactWriteItems")
# Operations dynalite 4 implements (its index.js), minus the table-level ones
# handled on their own below.
SENT_AS_IS = {
    "BatchGetItem",
    "BatchWriteItem",
    "DeleteItem",
    "DescribeTable",
    "DescribeTimeToLive",
    "GetItem",
    "ListTables",
    "ListTagsOfResource",
    "PutItem",
    "Query",
    "Scan",
    "UpdateItem",
}
SKIPPED = {
    "CreateTable": "creates the replay table(s) instead of being replayed",
    "DeleteTable": "would delete the replay table; nothing to validate",
    "UpdateTable": "would change the replay table; not used by keygate",
    "UpdateTimeToLive": "not implemented by dynalite",
    "TagResource": "table tags are not request shapes worth checking",
    "UntagResource": "table tags are not request shapes worth checking",
}
ATTRIBUTE_VALUE_TYPES = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
# Request fields holding attribute names mapped to AttributeValues.
ATTRIBUTE_VALUE_FIELDS = {"Item", "Key", "Keys", "ExclusiveStartKey", "ExpressionAttributeValues"}
TARGET = "DynamoDB_20120810."
TABLE_WAIT_SECONDS = 30
MAX_TRANSACTION_ACTIONS = 100


class Unusable(Exception):
    """The capture or the endpoint cannot be used (exit 2)."""


# ---------------------------------------------------------------- shapes


# Fields whose value is data, not shape.
DATA_FIELDS = {"ClientRequestToken"}


def name_shape(name: str) -> str:
    """An attribute name with its data parts (ids, dates, counters) reduced:
    `u#2026-11-01#key_46XUCqKyimYJ8XGU788QLp#ok` -> `u#9-9-9#key_<id>#ok`."""
    return re.sub(r"[0-9]+", "9", re.sub(r"[0-9A-Za-z]{12,}", "<id>", name))


def shape(value, in_attribute_value=False):
    """The body with every scalar reduced to its type. Expressions and
    placeholders are kept (they are what dynalite validates); attribute names
    in items and maps keep their form, not their ids. Values inside a DynamoDB
    AttributeValue lose their content."""
    if isinstance(value, dict):
        if in_attribute_value and not (value.keys() <= ATTRIBUTE_VALUE_TYPES and len(value) == 1):
            # A map of attribute names (an item, a key, an M's content).
            return {name_shape(k): shape(v, True) for k, v in sorted(value.items())}
        return {
            k: "<data>" if k in DATA_FIELDS else shape(v, in_attribute_value or k in ATTRIBUTE_VALUE_FIELDS)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [shape(v, in_attribute_value) for v in value]
    if in_attribute_value:
        return type(value).__name__
    return value


def shape_key(operation: str, body: dict) -> str:
    body = copy.deepcopy(body)
    for table_field in _table_name_fields(operation, body):
        table_field[0][table_field[1]] = "<table>"
    if isinstance(body.get("RequestItems"), dict):
        body["RequestItems"] = list(body["RequestItems"].values())
    # Placeholder values vary per key; their names are what matters.
    for names in _all_expression_attribute_names(body):
        for k in names:
            names[k] = "<name>"
    return operation + " " + json.dumps(shape(body), sort_keys=True)


def _all_expression_attribute_names(body):
    if isinstance(body, dict):
        for k, v in body.items():
            if k == "ExpressionAttributeNames" and isinstance(v, dict):
                yield v
            else:
                yield from _all_expression_attribute_names(v)
    elif isinstance(body, list):
        for v in body:
            yield from _all_expression_attribute_names(v)


def _table_name_fields(operation: str, body: dict):
    """(container, key) of every table name in a request, RequestItems aside."""
    if "TableName" in body:
        yield body, "TableName"
    for entry in body.get("TransactItems", []) or []:
        if isinstance(entry, dict):
            for action in entry.values():
                if isinstance(action, dict) and "TableName" in action:
                    yield action, "TableName"


def read_captures(paths: list[Path]) -> tuple[list[tuple[str, dict]], int]:
    """Every distinct shape (first example kept, in order) and the number of
    lines read."""
    seen: set[str] = set()
    requests = []
    lines = 0
    for path in paths:
        if not path.is_file():
            raise Unusable(f"capture {path} does not exist (was KEYGATE_REALISM_CAPTURE set for the test run?)")
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    entry = json.loads(line)
                    operation, body = entry["operation"], entry["body"]
                    if not isinstance(operation, str) or not isinstance(body, dict):
                        raise TypeError("operation must be a string and body an object")
                except (ValueError, KeyError, TypeError) as e:
                    raise Unusable(f"{path}:{number}: not a capture line ({e}): {line[:200]!r}") from e
                key = shape_key(operation, body)
                if key not in seen:
                    seen.add(key)
                    requests.append((operation, body))
    return requests, lines


# ---------------------------------------------------------------- dynalite


class Dynalite:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/") + "/"
        self.credentials = Credentials("test", "test")

    def call(self, operation: str, body: dict) -> tuple[int, dict]:
        data = json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=self.endpoint,
            data=data,
            headers={
                "X-Amz-Target": TARGET + operation,
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        SigV4Auth(self.credentials, "dynamodb", "us-east-1").add_auth(request)
        http = urllib.request.Request(self.endpoint, data=data, headers=dict(request.headers.items()), method="POST")
        try:
            with urllib.request.urlopen(http, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"{}")
            except ValueError:
                return e.code, {"__type": f"HTTP {e.code}", "message": raw.decode(errors="replace")}
        except (urllib.error.URLError, OSError) as e:
            raise Unusable(f"dynalite at {self.endpoint} cannot be reached: {e}") from e


def error_type(answer: dict) -> str | None:
    kind = answer.get("__type")
    return kind.rsplit("#", 1)[-1] if kind else None


def error_message(answer: dict) -> str:
    return answer.get("message") or answer.get("Message") or ""


REFUSALS = {"ValidationException", "SerializationException"}


# ---------------------------------------------------------------- reshaping


def without_rvoccf(body: dict) -> dict:
    body = copy.deepcopy(body)
    body.pop("ReturnValuesOnConditionCheckFailure", None)
    return body


def split_transact_write(body: dict) -> list[tuple[str, dict]]:
    """Each action of a TransactWriteItems as the single-item request that
    validates the same way."""
    shared = {k: body[k] for k in ("ReturnConsumedCapacity",) if k in body}
    out = []
    for entry in body.get("TransactItems", []):
        (kind, action), = entry.items()
        action = without_rvoccf(action)
        if kind == "Put":
            out.append(("PutItem", {**action, **shared}))
        elif kind == "Update":
            out.append(("UpdateItem", {**action, **shared}))
        elif kind == "Delete":
            out.append(("DeleteItem", {**action, **shared}))
        elif kind == "ConditionCheck":
            check = {
                k: action[k]
                for k in (
                    "TableName",
                    "Key",
                    "ConditionExpression",
                    "ExpressionAttributeNames",
                    "ExpressionAttributeValues",
                )
                if k in action
            }
            out.append(("UpdateItem", {**check, **shared}))
        else:
            raise Unusable(f"TransactWriteItems action {kind!r} is not Put, Update, Delete or ConditionCheck")
    return out


def split_transact_get(body: dict) -> list[tuple[str, dict]]:
    return [("GetItem", copy.deepcopy(entry["Get"])) for entry in body.get("TransactItems", [])]


def transaction_problems(body: dict) -> list[str]:
    """DynamoDB's own limits of a transaction, which the split hides."""
    actions = body.get("TransactItems", [])
    problems = []
    if not actions:
        problems.append("TransactItems is empty")
    if len(actions) > MAX_TRANSACTION_ACTIONS:
        problems.append(f"{len(actions)} actions, more than {MAX_TRANSACTION_ACTIONS}")
    items = Counter()
    for entry in actions:
        (_, action), = entry.items()
        key = action.get("Key") or action.get("Item")
        # The item's key attributes are not known here for a Put: the whole
        # item then stands for it, which finds exact repeats only.
        items[(action.get("TableName"), json.dumps(key, sort_keys=True))] += 1
    for (table, key), count in items.items():
        if count > 1 and key != "null":
            problems.append(
                f"Transaction request cannot include multiple operations on one item: {table} {key} ({count} times)"
            )
    return problems


def with_key_only_puts(body: dict, key_names: list[str]) -> dict:
    """A copy whose Put actions carry only their key as Key (for the
    repeated-item check)."""
    body = copy.deepcopy(body)
    for entry in body.get("TransactItems", []):
        put = entry.get("Put")
        if put and "Item" in put:
            put["Key"] = {k: put["Item"][k] for k in key_names if k in put["Item"]}
            del put["Item"]
    return body


# ---------------------------------------------------------------- tables


def create_tables(db: Dynalite, creates: list[dict], prefix: str) -> tuple[dict[str, str], str, list[str]]:
    """Create one table per captured CreateTable; returns the rename map, the
    default replacement and the primary table's key attribute names."""
    renames: dict[str, str] = {}
    default = None
    key_names: list[str] = []
    for n, body in enumerate(creates):
        name = f"{prefix}-{n}"
        request = dict(copy.deepcopy(body), TableName=name)
        status, answer = db.call("CreateTable", request)
        if status != 200:
            kind = error_type(answer)
            if kind in REFUSALS:
                raise Refused("CreateTable", request, answer)
            raise Unusable(f"CreateTable {name} failed: {kind}: {error_message(answer)}")
        renames[body.get("TableName", name)] = name
        if default is None:
            default = name
            key_names = [k["AttributeName"] for k in body.get("KeySchema", [])]
    deadline = time.monotonic() + TABLE_WAIT_SECONDS
    for name in renames.values():
        while True:
            status, answer = db.call("DescribeTable", {"TableName": name})
            table = answer.get("Table", {})
            indexes = table.get("GlobalSecondaryIndexes", [])
            if (
                status == 200
                and table.get("TableStatus") == "ACTIVE"
                and all(i.get("IndexStatus") == "ACTIVE" for i in indexes)
            ):
                break
            if time.monotonic() > deadline:
                raise Unusable(f"table {name} not ACTIVE after {TABLE_WAIT_SECONDS} s: {answer}")
            time.sleep(0.05)
    return renames, default, key_names


def renamed(operation: str, body: dict, renames: dict[str, str], default: str) -> dict:
    body = copy.deepcopy(body)
    for container, key in _table_name_fields(operation, body):
        container[key] = renames.get(container[key], default)
    if isinstance(body.get("RequestItems"), dict):
        merged: dict = {}
        for table, spec in body["RequestItems"].items():
            target = renames.get(table, default)
            if target in merged:
                # Two captured tables became one: their requests are merged.
                if isinstance(spec, list):
                    merged[target] = merged[target] + spec
                else:
                    merged[target] = dict(spec, Keys=merged[target]["Keys"] + spec["Keys"])
            else:
                merged[target] = spec
        body["RequestItems"] = merged
    return body


# ---------------------------------------------------------------- item state

# ValidationExceptions that depend on the item, not on the request: the
# capture is deduped, so the requests that built an item may not be replayed
# and the item can lack a map an update's path goes through. (moto, the
# behaviour reference, raises the same error when the product really sends
# such an update to a missing map, so the tests would catch that.)
ITEM_STATE_ERRORS = {"The document path provided in the update expression is invalid for update"}
# A document path of two or more elements: name or #placeholder, then .name,
# .#placeholder or [index] parts. Not a :value, not inside a word.
NESTED_PATH = re.compile(r"(?<![\w:#])(#?[A-Za-z_]\w*)((?:\.#?[A-Za-z_]\w*|\[\d+\])+)")


def seed_item(request: dict) -> dict | None:
    """A PutItem of the request's key plus an empty map for every map its
    update's nested paths go through (None if there is nothing to seed)."""
    names = request.get("ExpressionAttributeNames", {})
    item = copy.deepcopy(request.get("Key", {}))
    seeded = False
    for first, rest in NESTED_PATH.findall(request.get("UpdateExpression", "")):
        parts = [first] + re.findall(r"#?[A-Za-z_]\w*|\[\d+\]", rest)
        if any(p.startswith("[") for p in parts):
            continue  # list elements: left alone
        level = item
        for part in parts[:-1]:
            name = names.get(part, part)
            level = level.setdefault(name, {"M": {}}).get("M", {})
            seeded = True
    if not seeded:
        return None
    return {"TableName": request["TableName"], "Item": item}


# ---------------------------------------------------------------- replay


class Refused(Exception):
    def __init__(self, operation: str, request: dict, answer: dict, origin: str = ""):
        super().__init__(operation)
        self.operation, self.request, self.answer, self.origin = operation, request, answer, origin

    def report(self) -> str:
        origin = f" (from {self.origin})" if self.origin else ""
        return (
            f"REFUSED {self.operation}{origin}: {error_type(self.answer)}: {error_message(self.answer)}\n"
            f"  request: {json.dumps(self.request, sort_keys=True)}"
        )


def canary(db: Dynalite, table: str, key_names: list[str]) -> str:
    """An UpdateItem with overlapping document paths: dynalite must refuse it
    (DynamoDB does), or this whole check proves nothing."""
    body = {
        "TableName": table,
        "Key": {k: {"S": "canary"} for k in key_names},
        "UpdateExpression": "SET #a = :v, #a.#b = :v",
        "ExpressionAttributeNames": {"#a": "a", "#b": "b"},
        "ExpressionAttributeValues": {":v": {"S": "x"}},
    }
    status, answer = db.call("UpdateItem", body)
    if error_type(answer) != "ValidationException" or "overlap" not in error_message(answer):
        raise CanaryAccepted(f"canary: dynalite answered {status} {answer} to an overlapping-path UpdateItem {body}")
    return error_message(answer)


class CanaryAccepted(Exception):
    pass


def expand(operation: str, body: dict, key_names: list[str]):
    """What to send for one captured request: a list of (operation, body),
    or a skip reason (str)."""
    if operation in SKIPPED:
        return SKIPPED[operation]
    splits = {
        "TransactWriteItems": (split_transact_write, with_key_only_puts(body, key_names)),
        "TransactGetItems": (split_transact_get, body),
    }
    if operation in splits:
        split, keyed = splits[operation]
        problems = transaction_problems(keyed)
        if problems:
            answer = {"__type": "ValidationException (checked by replay_requests.py)", "message": "; ".join(problems)}
            raise Refused(operation, body, answer)
        return split(body)
    if operation in SENT_AS_IS:
        return [(operation, without_rvoccf(body))]
    return "not implemented by dynalite 4"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="+", type=Path, help="capture files (JSON lines)")
    parser.add_argument("--endpoint", default=os.environ.get("KEYGATE_DYNALITE_URL"), help="dynalite's URL")
    parser.add_argument("--table-prefix", default="keygate-replay")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if not args.endpoint:
            raise Unusable("no dynalite endpoint: run under infra/local/with-dynalite or pass --endpoint")
        requests, lines = read_captures(args.captures)
        operations = Counter(op for op, _ in requests)
        missing = [op for op in REQUIRED_OPERATIONS if not operations[op]]
        if missing:
            raise Unusable(
                f"the capture has no {', '.join(missing)} request ({lines} lines read, shapes: {dict(operations)}):"
                " an incomplete capture proves nothing"
            )
        creates = [body for op, body in requests if op == "CreateTable"]
        if not creates:
            raise Unusable("the capture has no CreateTable request to build the replay table from")
        print(f"replay: {lines} captured requests, {len(requests)} distinct shapes, dynalite at {args.endpoint}")

        db = Dynalite(args.endpoint)
        try:
            renames, default, key_names = create_tables(db, creates, args.table_prefix)
        except Refused as refused:
            print(refused.report(), file=sys.stderr)
            return 1
        print(f"replay: tables {renames} (any other captured table name -> {default})")
        print(f"replay: canary refused as it must be: {canary(db, default, key_names)}")

        replayed: Counter = Counter()
        sent: Counter = Counter()
        skipped: dict[str, list[str]] = defaultdict(list)
        refusals: list[Refused] = []
        answers: Counter = Counter()
        for operation, body in requests:
            try:
                plan = expand(operation, body, key_names)
            except Refused as refused:
                refusals.append(refused)
                continue
            if isinstance(plan, str):
                skipped[operation].append(plan)
                continue
            replayed[operation] += 1
            for sub_operation, sub_body in plan:
                request = renamed(sub_operation, sub_body, renames, default)
                status, answer = db.call(sub_operation, request)
                sent[sub_operation] += 1
                kind = error_type(answer) if status != 200 else None
                if kind == "ValidationException" and error_message(answer) in ITEM_STATE_ERRORS:
                    # Valid for some item, as DynamoDB would say: seed the
                    # maps its paths go through, then send it again.
                    seeded = seed_item(request)
                    if seeded is not None:
                        db.call("PutItem", seeded)
                        status, answer = db.call(sub_operation, request)
                        kind = error_type(answer) if status != 200 else None
                        answers[f"after seeding its item: {kind or 'OK'}"] += 1
                        continue
                answers[kind or "OK"] += 1
                if kind in REFUSALS or (status != 200 and kind is None):
                    origin = operation if sub_operation != operation else ""
                    refusals.append(Refused(sub_operation, request, answer, origin))
    except Unusable as e:
        print(f"replay: {e}", file=sys.stderr)
        return 2
    except CanaryAccepted as e:
        print(f"replay: FAILED, the check itself is broken: {e}", file=sys.stderr)
        return 1

    print("replay: shapes replayed per operation (requests sent to dynalite):")
    for op in sorted(replayed):
        print(f"  {op:<20} {replayed[op]}")
    print(f"replay: requests sent per operation: {dict(sorted(sent.items()))}")
    print(f"replay: answers: {dict(sorted(answers.items()))} (errors other than validation are expected)")
    for op in sorted(set(SKIPPED) | set(skipped)):
        if skipped.get(op):
            print(f"replay: skipped {op} x{len(skipped[op])}: {skipped[op][0]}")
    print(f"replay: {time.monotonic() - started:.1f} s")
    if refusals:
        for refused in refusals:
            print(refused.report(), file=sys.stderr)
        print(f"replay: FAILED, dynalite refused {len(refusals)} request(s) DynamoDB would refuse too", file=sys.stderr)
        return 1
    print("replay: OK, dynalite accepted every request shape")
    return 0


if __name__ == "__main__":
    sys.exit(main())
