"""boto3's default credential chain with the container-credentials variables set, as an
application in a pod opted in to the token contract would use it.

Usage: python3 container_credentials.py STS_ENDPOINT
(AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE come from
the environment, as the pod spec sets them.)

Prints one JSON object: the credential method and access key the chain found (or null),
the caller identity STS gives those credentials, and the error if there was one.
"""

import json
import os
import sys

import boto3

if not os.environ.get('AWS_CONTAINER_CREDENTIALS_FULL_URI'):
    sys.exit('refusing to run: AWS_CONTAINER_CREDENTIALS_FULL_URI is not set')
# The instance-metadata provider comes after the container one: never let it be tried.
os.environ['AWS_EC2_METADATA_DISABLED'] = 'true'

out = {'method': None, 'accessKeyId': None, 'arn': None, 'error': None}
try:
    session = boto3.session.Session(region_name='us-east-1')
    credentials = session.get_credentials()
    if credentials is not None:
        out['method'] = credentials.method
        frozen = credentials.get_frozen_credentials()
        out['accessKeyId'] = frozen.access_key
        sts = session.client('sts', endpoint_url=sys.argv[1])
        out['arn'] = sts.get_caller_identity()['Arn']
except Exception as error:  # the test reads the reason
    out['error'] = f'{type(error).__name__}: {error}'
print(json.dumps(out))
