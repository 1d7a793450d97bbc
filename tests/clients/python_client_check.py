"""Uses the Python client generated from openapi/openapi.json against a live server.

Usage: PYTHONPATH=DIR python3 python_client_check.py BASE_URL WATCHED_TOPIC TOKEN READER_TOKEN
where DIR holds the package `pubsub_client` that openapi-python-client generated, and the server
requires tokens: TOKEN has every right, READER_TOKEN may only subscribe. Without a token the
client gets 401, with the reader's 403; with TOKEN (the generated AuthenticatedClient) it creates a topic,
publishes over REST (also one message to WATCHED_TOPIC, which the caller watches over WebSocket),
reads history, lists, reads stats and deletes, and checks error statuses. Prints a JSON report;
any failed check raises, so the exit status is not 0.
"""

import json
import sys

from pubsub_client import AuthenticatedClient, Client
from pubsub_client.api.messages import list_messages, publish_message
from pubsub_client.api.operations import get_health, get_stats
from pubsub_client.api.topics import create_topic, delete_topic, get_topic, list_topics
from pubsub_client.models import (
    CreateTopicRequest,
    ErrorCode,
    ErrorResponse,
    History,
    PublishRequest,
    Published,
    Stats,
    Topic,
    TopicDeleted,
    TopicDetails,
    TopicList,
)

TOPIC = "generated-client"


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def expect_error(response, status, code):
    expect(response.status_code == status, f"status {status}, not {response.status_code}")
    expect(isinstance(response.parsed, ErrorResponse), f"an ErrorResponse: {response.content!r}")
    expect(response.parsed.error.code == code, f"{code}, not {response.parsed.error.code}")
    return {"status": int(response.status_code), "code": response.parsed.error.code.value}


def main(base_url, watched, token, reader_token):
    report = {}
    with Client(base_url=base_url) as anonymous:
        health = get_health.sync(client=anonymous)
        expect(health.status == "healthy", f"healthy without a token: {health}")
        refused = create_topic.sync_detailed(client=anonymous, body=CreateTopicRequest(name=TOPIC))
        report["without_token"] = expect_error(refused, 401, ErrorCode.UNAUTHORIZED)
        challenge = refused.headers.get("www-authenticate", "")
        expect(challenge.startswith("Bearer"), f"a bearer challenge: {challenge!r}")

    with AuthenticatedClient(base_url=base_url, token=reader_token) as reader:
        refused = list_topics.sync_detailed(client=reader)
        report["reader_lists"] = expect_error(refused, 403, ErrorCode.FORBIDDEN)

    with AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=True
    ) as client:

        created = create_topic.sync_detailed(client=client, body=CreateTopicRequest(name=TOPIC))
        expect(created.status_code == 201, f"created: {created.status_code}")
        expect(isinstance(created.parsed, Topic) and created.parsed.name == TOPIC, created.parsed)
        report["created"] = created.parsed.to_dict()

        again = create_topic.sync_detailed(client=client, body=CreateTopicRequest(name=TOPIC))
        report["create_again"] = expect_error(again, 409, ErrorCode.TOPIC_EXISTS)
        bad_name = create_topic.sync_detailed(
            client=client, body=CreateTopicRequest(name="breaking news")
        )
        report["bad_name"] = expect_error(bad_name, 400, ErrorCode.INVALID_TOPIC)

        seqs = []
        for message in [{"text": "Hello", "n": [1, 2]}, None, "plain"]:
            published = publish_message.sync(
                TOPIC, client=client, body=PublishRequest(message=message)
            )
            expect(isinstance(published, Published), f"published: {published}")
            seqs.append(published.seq)
        expect(seqs == [1, 2, 3], f"seqs count from 1: {seqs}")
        report["seqs"] = seqs

        watched_ack = publish_message.sync(
            watched, client=client, body=PublishRequest(message={"from": "python client"})
        )
        expect(isinstance(watched_ack, Published), f"published to {watched}: {watched_ack}")
        report["watched_seq"] = watched_ack.seq

        history = list_messages.sync(TOPIC, client=client, since_seq=1, limit=10)
        expect(isinstance(history, History), f"history: {history}")
        expect([m.seq for m in history.messages] == [2, 3], f"after seq 1: {history}")
        expect([m.message for m in history.messages] == [None, "plain"], "messages as published")
        expect(history.last_seq == 3, f"last_seq: {history.last_seq}")
        report["history"] = history.to_dict()

        topics = list_topics.sync(client=client)
        expect(isinstance(topics, TopicList), f"list: {topics}")
        report["topics"] = sorted(t.name for t in topics.topics)
        expect(report["topics"] == sorted([TOPIC, watched]), f"listed: {report['topics']}")

        details = get_topic.sync(TOPIC, client=client)
        expect(isinstance(details, TopicDetails), f"details: {details}")
        expect(details.messages_published == 3 and details.last_seq == 3, details)
        expect(len(details.epoch) > 0, "an epoch")

        stats = get_stats.sync(client=client)
        expect(isinstance(stats, Stats), f"stats: {stats}")
        expect(stats.topics[TOPIC].messages_published == 3, stats.topics.to_dict())
        report["stats_topics"] = stats.topics.to_dict()

        deleted = delete_topic.sync(TOPIC, client=client)
        expect(isinstance(deleted, TopicDeleted) and deleted.deleted, f"deleted: {deleted}")
        report["deleted"] = deleted.to_dict()

        gone = get_topic.sync_detailed(TOPIC, client=client)
        report["after_delete"] = expect_error(gone, 404, ErrorCode.TOPIC_NOT_FOUND)
        missing = list_messages.sync_detailed(TOPIC, client=client)
        report["history_after_delete"] = expect_error(missing, 404, ErrorCode.TOPIC_NOT_FOUND)

    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python_client_check.py BASE_URL WATCHED_TOPIC TOKEN READER_TOKEN")
    main(*sys.argv[1:])
