"""boto3's default credential chain, as an application in a pod would use it.

Usage: python3 botocore_credentials.py STS_ENDPOINT

Prints one JSON object: the credential method and access key the chain found (or
null), the caller identity STS gives those credentials, and every request botocore
sent to the metadata service (method, path, whether it carried a token, status).
Recording wraps botocore's HTTP session send; it changes nothing that is sent.
"""

import json
import socket
import sys
from urllib.parse import urlsplit

import boto3
import botocore.httpsession

METADATA_HOST = '169.254.169.254'


def refuse_outside_a_test_pod():
    # A UDP connect sends nothing; it only asks the kernel which source address a packet
    # to the metadata address would get. In a test pod namespace that is the pod's IP.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((METADATA_HOST, 80))
        source = probe.getsockname()[0]
    except OSError:
        source = None
    finally:
        probe.close()
    if source is None or not source.startswith('10.200.0.'):
        sys.exit(f'refusing to run: not in a test pod namespace (source address {source})')


refuse_outside_a_test_pod()
requests = []
_send = botocore.httpsession.URLLib3Session.send


def recording_send(self, request):
    url = urlsplit(request.url)
    entry = None
    if url.hostname == METADATA_HOST:
        names = {name.lower() for name in request.headers.keys()}
        entry = {
            'method': request.method,
            'path': url.path,
            'token': 'x-aws-ec2-metadata-token' in names,
            'status': None,
        }
        requests.append(entry)
    try:
        response = _send(self, request)
    except Exception as error:  # timeouts and connection errors: recorded, then raised as before
        if entry is not None:
            entry['error'] = type(error).__name__
        raise
    if entry is not None:
        entry['status'] = response.status_code
    return response


botocore.httpsession.URLLib3Session.send = recording_send

out = {'method': None, 'accessKeyId': None, 'arn': None, 'requests': requests}
session = boto3.Session()
credentials = session.get_credentials()
if credentials is not None:
    frozen = credentials.get_frozen_credentials()
    out['method'] = credentials.method
    out['accessKeyId'] = frozen.access_key
    sts = session.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1')
    out['arn'] = sts.get_caller_identity()['Arn']
print(json.dumps(out))
