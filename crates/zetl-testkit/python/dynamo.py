"""DynamoDB test driver for a local moto server: tables, items of every attribute type,
load, and a dump of a whole table as DynamoDB typed JSON (one item per line) for comparison.

    python3 dynamo.py ENDPOINT create TABLE [NEW_AND_OLD_IMAGES|KEYS_ONLY|none]
    python3 dynamo.py ENDPOINT fill TABLE FROM TO
    python3 dynamo.py ENDPOINT mutate TABLE
    python3 dynamo.py ENDPOINT churn TABLE SECONDS SEED
    python3 dynamo.py ENDPOINT dump TABLE
    python3 dynamo.py ENDPOINT sync TABLE N      (the sentinel item pk=sync, sk=N)
    python3 dynamo.py ENDPOINT load TABLE FROM TO VERSION   (BatchWriteItem, 25 a call)
    python3 dynamo.py ENDPOINT read-stream TABLE (every record from the oldest; prints the count)
"""
import base64
import json
import random
import sys
import time

import boto3


def client(endpoint):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def create(db, table, view="NEW_AND_OLD_IMAGES"):
    args = dict(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    if view != "none":
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    db.create_table(**args)


def item(i, version=0):
    """An item with every attribute type; `version` changes its values."""
    v = version
    return {
        "pk": {"S": f"user-{i % 7}"},
        "sk": {"N": str(i)},
        "s": {"S": f"name {i} \"quoted\" \\ tab\t é {v}"},
        "n": {"N": f"{i}12345678901234567890123456.{v}1234567891"},
        "small": {"N": str(-i * 3 + v)},
        "b": {"B": bytes([i % 256, 0, 255, v % 256])},
        "ok": {"BOOL": (i + v) % 2 == 0},
        "nothing": {"NULL": True},
        "m": {"M": {"nested": {"S": f"n{i}"}, "deep": {"M": {"x": {"N": str(v)}}}, "list": {"L": [{"N": "1"}, {"S": "two"}]}}},
        "l": {"L": [{"S": "a"}, {"N": str(i)}, {"BOOL": False}, {"NULL": True}, {"B": b"\x01\x02"}]},
        "ss": {"SS": [f"x{i}", f"y{v}", "z"]},
        "ns": {"NS": [str(i), "1.5", f"-{v + 2}"]},
        "bs": {"BS": [b"\x00", bytes([i % 256 or 1, 9])]},
    }


def fill(db, table, start, end):
    for i in range(start, end):
        db.put_item(TableName=table, Item=item(i))


def load(db, table, start, end, version):
    batch = []
    for i in range(start, end):
        batch.append({"PutRequest": {"Item": item(i, version)}})
        if len(batch) == 25 or i == end - 1:
            pending = {table: batch}
            while pending:
                pending = db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
            batch = []


def read_stream(endpoint, table):
    """Reads the table's stream from its oldest record until a page comes back empty."""
    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    streams = boto3.client("dynamodbstreams", **kwargs)
    arn = client(endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    n = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=1000)
            n += len(page["Records"])
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    print(n)


def key(i):
    return {"pk": {"S": f"user-{i % 7}"}, "sk": {"N": str(i)}}


def mutate(db, table):
    """A fixed mix: updates (expression and whole-item), deletes, new items, re-inserts."""
    for i in range(0, 20):
        db.update_item(
            TableName=table,
            Key=key(i),
            UpdateExpression="SET s = :s, added = :a REMOVE ss",
            ExpressionAttributeValues={":s": {"S": f"updated {i}"}, ":a": {"N": "42"}},
        )
    for i in range(20, 30):
        db.put_item(TableName=table, Item=item(i, version=3))
    for i in range(30, 40):
        db.delete_item(TableName=table, Key=key(i))
    for i in range(1000, 1010):
        db.put_item(TableName=table, Item=item(i, version=1))
    db.put_item(TableName=table, Item=item(35, version=9))


def churn(db, table, seconds, seed):
    """Random puts, updates and deletes on 300 keys until the time is up; prints how many."""
    rng = random.Random(seed)
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        i = rng.randrange(300)
        r = rng.random()
        if r < 0.5:
            db.put_item(TableName=table, Item=item(i, version=rng.randrange(100)))
        elif r < 0.8:
            db.update_item(
                TableName=table,
                Key=key(i),
                UpdateExpression="SET small = :v",
                ExpressionAttributeValues={":v": {"N": str(rng.randrange(-1000, 1000))}},
            )
        else:
            db.delete_item(TableName=table, Key=key(i))
        n += 1
    print(n)


def encode(value):
    """boto3's typed value as DynamoDB JSON (binary as base64)."""
    (tag, v), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(bytes(v)).decode()}
    if tag == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode() for b in v]}
    if tag == "M":
        return {"M": {k: encode(x) for k, x in v.items()}}
    if tag == "L":
        return {"L": [encode(x) for x in v]}
    return {tag: v}


def dump(db, table):
    pages = db.get_paginator("scan").paginate(TableName=table)
    for page in pages:
        for it in page["Items"]:
            print(json.dumps({k: encode(v) for k, v in it.items()}, sort_keys=True, ensure_ascii=False))


def main():
    endpoint, command, table, *rest = sys.argv[1:]
    db = client(endpoint)
    if command == "create":
        create(db, table, *rest)
    elif command == "fill":
        fill(db, table, int(rest[0]), int(rest[1]))
    elif command == "mutate":
        mutate(db, table)
    elif command == "churn":
        churn(db, table, float(rest[0]), int(rest[1]))
    elif command == "dump":
        dump(db, table)
    elif command == "load":
        load(db, table, int(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "read-stream":
        read_stream(endpoint, table)
    elif command == "sync":
        db.put_item(TableName=table, Item={"pk": {"S": "sync"}, "sk": {"N": rest[0]}})
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
