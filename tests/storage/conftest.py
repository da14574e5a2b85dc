from tests.fixtures_s3 import s3_bucket, s3_client, s3_env, s3_server, s3_store_url  # noqa: F401 - fixtures
