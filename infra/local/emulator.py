"""Local AWS for keygate: moto's DynamoDB and Secrets Manager over HTTP.

Differs from `moto_server` in three ways that matter to us:
- requests are applied one at a time (a lock around the app), because moto
  does not make a conditional update atomic under concurrent requests, while
  DynamoDB serialises writes to an item. Without it, concurrency tests would
  measure the emulator's races instead of our conditions;
- it binds port 0 and prints the port it got, so there is no window in which
  another process can take a port we picked;
- `TransactWriteItems` backs up only the items it touches, where moto deep-
  copies every touched table once per item of the transaction: with a few
  thousand items that made each transaction cost seconds and the emulator
  grow to tens of GB. Semantics are unchanged (all or nothing);
- `Query` reads only the partition it names (or, on an index, every item
  unsorted): moto sorts the whole table on every Query page, which made a
  month of usage history for 1,000 keys take many minutes to read. Results
  are unchanged (moto sorts the matches itself);
- the answers of the read operations (`Query`, `Scan`, `GetItem`,
  `BatchGetItem`), already DynamoDB JSON, are written with `json.dumps`
  instead of moto's generic model-driven serializer, which spent seconds per
  page of items (and `UpdateItem`/`PutItem` answers likewise);
- no access-log line per request.

Usage: python emulator.py [--port-file FILE]
"""

import argparse
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


def cheap_transactions() -> None:
    """Replace moto's whole-table backup in TransactWriteItems by a backup of
    the touched items (moto 5.2; requests are serialised, see below)."""
    import copy as real_copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class TablesAreNotCopied:
        @staticmethod
        def deepcopy(obj, *args, **kwargs):
            if isinstance(obj, Table):
                return obj
            return real_copy.deepcopy(obj, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(real_copy, name)

    models.copy = TablesAreNotCopied()
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key:
                continue
            hk = DynamoType(key[table.hash_key_attr])
            rk = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            if rk is not None:
                prior = table.items.get(hk, {}).get(rk)
            else:
                prior = table.items.get(hk)
            saved.append((table, hk, rk, real_copy.deepcopy(prior)))
        try:
            return original(self, transact_items)
        except Exception:
            for table, hk, rk, prior in reversed(saved):
                if rk is None:
                    if prior is None:
                        table.items.pop(hk, None)
                    else:
                        table.items[hk] = prior
                elif prior is None:
                    table.items.get(hk, {}).pop(rk, None)
                else:
                    table.items[hk][rk] = prior
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def partition_queries() -> None:
    """Let `Query` skip moto's sort of the whole table (moto 5.2)."""
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None and self.range_key_attr and hash_key is not None:
            partition = self.items.get(hash_key, {})
            items = lambda: list(partition.values())  # noqa: E731
        else:

            def items():
                out = []
                for hash_set in self.items.values():
                    out.extend(hash_set.values() if self.range_key_attr else [hash_set])
                return out

        # An instance attribute shadows the method for this call only
        # (requests are serialised, see below).
        self.all_items = items
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query


def fast_read_answers() -> None:
    """Serialise read results directly (moto 5.2): they are wire-format dicts."""
    import json

    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    original = DynamoHandler.serialized
    reads = {"Query", "Scan", "GetItem", "BatchGetItem", "UpdateItem", "PutItem"}

    def serialized(self, action_result):
        result = action_result.result
        if (
            type(action_result) in (ActionResult, DynamoResult)
            and isinstance(result, dict)
            and self._get_action() in reads
        ):
            try:
                body = json.dumps(result)
            except TypeError:
                return original(self, action_result)
            headers = {"Content-Type": "application/x-amz-json-1.0"}
            headers.update(self.response_headers)
            return 200, headers, body
        return original(self, action_result)

    DynamoHandler.serialized = serialized


def serialised(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        with lock:
            # Materialise the body inside the lock: the work happens while iterating.
            return list(app(environ, start_response))

    return wrapped


class QuietRequests(WSGIRequestHandler):
    """No access-log line per request: a fifth of the emulator's time went to
    formatting them and contending for the logging lock."""

    def log_request(self, *args, **kwargs) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    cheap_transactions()
    partition_queries()
    fast_read_answers()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", args.port, serialised(app), threaded=True, request_handler=QuietRequests
    )
    with open(args.port_file, "w") as f:
        f.write(str(server.port))
    print(f"emulator listening on 127.0.0.1:{server.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
