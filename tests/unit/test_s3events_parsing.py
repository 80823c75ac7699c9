"""s3events: the changes read from EventBridge and S3-notification messages, and sequencer order."""

from __future__ import annotations

import json

from facesearch.s3events import CREATED, REMOVED, Change, changes_of, sequencer_key
from tests.support.events import load_event


def test_the_ready_events_hold_one_change_each():
    created = json.loads(load_event("s3-object-created")["Records"][0]["body"])
    removed = json.loads(load_event("s3-object-removed")["Records"][0]["body"])

    (put,) = changes_of(created)
    (gone,) = changes_of(removed)

    assert (put.kind, put.bucket, put.key) == (CREATED, "facesearch-demo-images", "photos/sample1.jpg")
    assert (gone.kind, gone.key) == (REMOVED, "photos/sample1.jpg")
    assert sequencer_key(gone.sequencer) > sequencer_key(put.sequencer)


def test_notification_keys_are_url_decoded_and_other_events_skipped():
    document = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {
                        "key": "photos/caf%C3%A9+1.jpg",
                        "sequencer": "0A",
                        "eTag": "e",
                        "versionId": "v1",
                    },
                },
            },
            {"eventSource": "aws:s3", "eventName": "ObjectRestore:Completed", "s3": {}},
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectRemoved:DeleteMarkerCreated",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "photos/x.jpg", "sequencer": "0B"}},
            },
        ]
    }

    assert list(changes_of(document)) == [
        Change(CREATED, "b", "photos/café 1.jpg", "0A", "e", "v1"),
        Change(REMOVED, "b", "photos/x.jpg", "0B"),
    ]


def test_test_events_and_other_detail_types_hold_no_change():
    assert list(changes_of({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert list(changes_of({"source": "aws.s3", "detail-type": "Object Tags Added", "detail": {}})) == []


def test_sequencers_of_different_lengths_compare_after_right_padding():
    assert sequencer_key("0055AED6DCD90281E5") < sequencer_key("0055AED6DCD90281E6")
    assert sequencer_key("0055AED6DCD90281E5") < sequencer_key("0055AED6DCD90281E500001")
    assert sequencer_key("0a") == sequencer_key("0A")
