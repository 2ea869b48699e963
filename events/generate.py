"""Writes the API Gateway HTTP API (payload 2.0) sample events in events/ from fixture X-rays."""
import base64
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def event(path, method, headers, body, is_b64, request_id):
    e = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-length": str(len(body) if body else 0),
            "host": "abc123xyz9.execute-api.us-east-1.amazonaws.com",
            "user-agent": "curl/8.5.0",
            "x-amzn-trace-id": "Root=1-674700aa-1f2e3d4c5b6a79880a1b2c3d",
            "x-forwarded-for": "203.0.113.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **headers,
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123xyz9",
            "domainName": "abc123xyz9.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123xyz9",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "27/Nov/2026:09:20:00 +0000",
            "timeEpoch": 1795771200000,
        },
        "isBase64Encoded": is_b64,
    }
    if body is not None:
        e["body"] = body
    return e


# The requestContext.authorizer API Gateway HTTP APIs (payload 2.0) send with an AWS_IAM
# route (a SigV4-signed call by an IAM user) and with a JWT authorizer (claims as strings).
IAM = {"iam": {"accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": "123456789012", "callerId": "AIDAJQABLZS4A3QDU576Q", "cognitoIdentity": None, "principalOrgId": None, "userArn": "arn:aws:iam::123456789012:user/radiology-batch", "userId": "AIDAJQABLZS4A3QDU576Q"}}
JWT = {"jwt": {"claims": {"aud": "covid-xray-page", "auth_time": "1795771100", "exp": "1795774800", "iat": "1795771200", "iss": "https://idp.example.org/realms/radiology", "scope": "openid", "sub": "6c1f3e0a-3b7d-4d8e-9a41-2f8c5e9b7d10", "token_use": "id"}, "scopes": None}}


def signed(e, authorizer):
    """The event as an authenticated route delivers it: its route key, and the authorizer."""
    e["routeKey"] = "POST /predict"
    e["requestContext"]["routeKey"] = "POST /predict"
    e["requestContext"]["authorizer"] = authorizer
    return e


def main():
    fx = os.path.join(ROOT, "tests/fixtures/xrays")
    covid = open(os.path.join(fx, "covid", sorted(os.listdir(os.path.join(fx, "covid")))[0]), "rb").read()
    normal = open(os.path.join(fx, "normal", sorted(os.listdir(os.path.join(fx, "normal")))[-1]), "rb").read()
    json_ct = {"content-type": "application/json"}
    events = {
        "apigw-json-base64.json": event("/predict", "POST", json_ct, json.dumps({"image": base64.b64encode(normal).decode()}), False, "Qm1aXjB7IAMEVxw="),
        "apigw-raw-jpeg.json": event("/predict", "POST", {"content-type": "image/jpeg"}, base64.b64encode(covid).decode(), True, "Qm1aXjB8IAMEVyA="),
        "apigw-s3-reference.json": event("/predict", "POST", json_ct, json.dumps({"s3": {"bucket": "covid-xray-uploads", "key": "uploads/ward 3/röntgen film.jpg"}}), False, "Qm1aXjB9IAMEVzE="),
        "apigw-malformed.json": event("/predict", "POST", json_ct, '{"image": "not base64 at all!!!"', False, "Qm1aXjB+IAMEVzI="),
        "apigw-health.json": event("/health", "GET", {}, None, False, "Qm1aXjB/IAMEVzM="),
        # Through the authorizers of template.yaml's ApiAuth: the identity API Gateway adds.
        "apigw-iam-signed.json": signed(event("/predict", "POST", json_ct, json.dumps({"image": base64.b64encode(normal).decode()}), False, "Qm1aXjCAIAMEVzQ="), IAM),
        "apigw-jwt.json": signed(event("/predict", "POST", {**json_ct, "authorization": "Bearer eyJraWQiOiJ0ZXN0LWtleS0xIiwiYWxnIjoiUlMyNTYifQ.e30.c2ln"}, json.dumps({"image": base64.b64encode(covid).decode()}), False, "Qm1aXjCBIAMEVzU="), JWT),
    }
    for name, e in events.items():
        with open(os.path.join(ROOT, "events", name), "w") as f:
            json.dump(e, f, indent=2)


if __name__ == "__main__":
    main()
