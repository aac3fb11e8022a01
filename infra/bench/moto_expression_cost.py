"""How much of the emulator's time per write is our expression's shape.

Runs moto in-process (no HTTP) and times 300 UpdateItems of each shape on
one item: the baseline's single conditional ADD, the authorizer's full write,
and the full write without some of its usage counters. Prints writes/s.

    .venv/bin/python infra/bench/moto_expression_cost.py
"""

import time

import boto3
from moto import mock_aws

KEY = {"pk": {"S": "ALW#a"}, "sk": {"S": "ALW"}}
NAMES = {
    "#kv": "kv", "#kid": "key_x", "#ql": "ql", "#qt": "qt", "#qs": "qs", "#qu": "qu",
    "#rl": "rl", "#rw": "rw", "#rs": "rs", "#ru": "ru",
    "#uok": "u#2026-11-29#key_x#ok", "#urt": "u#2026-11-29#key_x#r#GET /x",
    "#uip": "u#2026-11-29#key_x#ip3",
}
VALUES = {
    ":ver": {"N": "1"}, ":one": {"N": "1"}, ":qt": {"S": "month"}, ":qs": {"N": "0"},
    ":rw": {"N": "60"}, ":rs": {"N": "0"}, ":ip": {"S": "203.0.113.10"},
}
CONDITION = ("#kv.#kid = :ver AND #qt = :qt AND #qs = :qs AND #qu < #ql "
             "AND #rw = :rw AND #rs = :rs AND #ru < #rl")


def shape(update, drop_names=(), drop_values=()):
    return dict(
        UpdateExpression=update,
        ConditionExpression=CONDITION,
        ExpressionAttributeNames={k: v for k, v in NAMES.items() if k not in drop_names},
        ExpressionAttributeValues={k: v for k, v in VALUES.items() if k not in drop_values},
        ReturnValues="UPDATED_NEW",
    )


def main() -> None:
    with mock_aws():
        c = boto3.client("dynamodb", region_name="us-east-1")
        c.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        c.put_item(TableName="t", Item={
            **KEY, "kv": {"M": {"key_x": {"N": "1"}}},
            "ql": {"N": "1000000000"}, "qt": {"S": "month"}, "qs": {"N": "0"}, "qu": {"N": "0"},
            "rl": {"N": "1000000000"}, "rw": {"N": "60"}, "rs": {"N": "0"}, "ru": {"N": "0"},
        })
        cases = {
            "baseline conditional ADD": dict(
                UpdateExpression="ADD #u :one",
                ConditionExpression="attribute_not_exists(#u) OR #u < :lim",
                ExpressionAttributeNames={"#u": "used"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":lim": {"N": "1000000000"}},
            ),
            "authorizer write": shape(
                "SET #uip = if_not_exists(#uip, :ip) ADD #uok :one, #qu :one, #ru :one, #urt :one"),
            "without ok and address counters": shape(
                "ADD #qu :one, #ru :one, #urt :one", ("#uok", "#uip"), (":ip",)),
            "without any usage counter": shape(
                "ADD #qu :one, #ru :one", ("#uok", "#uip", "#urt"), (":ip",)),
        }
        for label, kwargs in cases.items():
            started = time.time()
            for _ in range(300):
                c.update_item(TableName="t", Key=KEY, **kwargs)
            print(f"{label}: {300 / (time.time() - started):.0f} writes/s")


if __name__ == "__main__":
    main()
