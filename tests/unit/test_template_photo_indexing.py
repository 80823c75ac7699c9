"""template.yaml's S3-event indexing block: off by default, every resource conditional, grants scoped."""

from __future__ import annotations

from facesearch import settings
from facesearch.devtools import cfn
from facesearch.settings import REPO_ROOT

TEMPLATE = cfn.load_template(REPO_ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
BLOCK = {
    "PhotoEventsDeadLetterQueue",
    "PhotoEventsQueue",
    "PhotoEventsRule",
    "PhotoEventsQueuePolicy",
    "PhotoIndexLogGroup",
    "PhotoIndexFunction",
}
FUNCTION = RESOURCES["PhotoIndexFunction"]["Properties"]


def _resolve(node, **parameters):
    return cfn.Resolver(TEMPLATE, parameters, "eu-west-1").resolve(node)


def test_off_by_default_and_every_resource_depends_on_it():
    assert TEMPLATE["Parameters"]["PhotoIndexing"]["Default"] == "Disabled"
    conditional = {name for name, resource in RESOURCES.items() if resource.get("Condition") == "IndexPhotos"}
    assert conditional == BLOCK


def test_the_handler_and_its_variables_exist():
    assert FUNCTION["Handler"] == "facesearch.s3events.s3_event_handler"
    constants = {value for name, value in vars(settings).items() if name.startswith("ENV_")}
    named = {name for name in FUNCTION["Environment"]["Variables"] if name.startswith("FACESEARCH_")}
    assert named <= constants
    assert {settings.ENV_PHOTO_COLLECTION, settings.ENV_PHOTO_PREFIX} <= named


def test_failed_messages_end_in_the_dead_letter_queue():
    queue = RESOURCES["PhotoEventsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["PhotoEventsDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] >= 6 * FUNCTION["Timeout"]
    source = FUNCTION["Events"]["PhotoEvents"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    target = RESOURCES["PhotoEventsRule"]["Properties"]["Targets"][0]
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["PhotoEventsDeadLetterQueue", "Arn"]}


def test_grants_cover_only_the_photo_collection_and_the_photo_prefix():
    statements = {
        statement["Sid"]: statement
        for policy in FUNCTION["Policies"]
        for statement in policy.get("Statement", [])
    }
    parameters = {"PhotoIndexing": "Enabled", "PhotoBucketName": "my-photos", "PhotoCollection": "family"}
    collection = _resolve(statements["PhotoCollectionReadWrite"]["Resource"], **parameters)
    photos = _resolve(statements["PhotosRead"]["Resource"], **parameters)
    assert collection == "arn:aws:s3:::CollectionsBucket/collections/family/*"
    assert photos == "arn:aws:s3:::my-photos/photos/*"
    assert "s3:PutObject" not in statements["PhotosRead"]["Action"]
    queue_policy = RESOURCES["PhotoEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert queue_policy["Principal"] == {"Service": "events.amazonaws.com"}
    assert queue_policy["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["PhotoEventsRule", "Arn"]
    }


def test_the_rule_watches_the_collections_bucket_unless_another_is_named():
    bucket = RESOURCES["PhotoEventsRule"]["Properties"]["EventPattern"]["detail"]["bucket"]["name"][0]
    assert _resolve(bucket) == "CollectionsBucket"
    assert _resolve(bucket, PhotoBucketName="my-photos") == "my-photos"
