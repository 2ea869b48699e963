// The upload page of a JWT deployment in a real headless Chromium: without a token the API
// answers 401; "Sign in" runs the authorization-code flow with PKCE against an OpenID issuer
// on loopback (this file's own, signing RS256 ID tokens with the test key whose JWKS the
// server reads), and the film is then classified with the bearer token. And the page of an
// IAM deployment, which says how to sign a request. Needs /usr/bin/chromium and the built
// xray-http binary (XRAY_HTTP_BIN).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey, randomBytes, sign } from "node:crypto";
import { createServer } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { root, startServer } from "./server.mjs";

const expected = JSON.parse(readFileSync(path.join(root, "tests/fixtures/expected.json"), "utf8")).images;
const key = createPrivateKey({ key: readFileSync(path.join(root, "tests/fixtures/jwt/issuer.der")), format: "der", type: "pkcs1" });
const CLIENT = "covid-xray-page";
let issuer, idp, browser;
const servers = [];
const codes = new Map(); // code -> {challenge, redirect}
const seen = { authorize: 0, token: 0 };

const b64url = (buf) => Buffer.from(buf).toString("base64url");

function idToken(sub) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "RS256", kid: "test-key-1", typ: "JWT" }));
  const body = b64url(JSON.stringify({ iss: issuer, aud: CLIENT, sub, iat: now, exp: now + 600 }));
  return `${head}.${body}.${b64url(sign("sha256", Buffer.from(`${head}.${body}`), key))}`;
}

// A minimal OpenID provider: discovery, its JWKS, an authorize endpoint that signs the user
// in at once (checking the PKCE method), and a token endpoint that checks the verifier against
// the challenge before it issues an ID token. The server under test is given the same JWKS,
// saved to a file (XRAY_JWKS_FILE), as an operator saves the issuer's jwks_uri.
function startIssuer() {
  idp = createServer((req, res) => {
    const url = new URL(req.url, issuer);
    res.setHeader("access-control-allow-origin", "*");
    if (url.pathname === "/.well-known/openid-configuration") {
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }));
    }
    if (url.pathname === "/jwks") {
      res.setHeader("content-type", "application/json");
      return res.end(readFileSync(path.join(root, "tests/fixtures/jwt/jwks.json")));
    }
    if (url.pathname === "/authorize") {
      seen.authorize++;
      const q = url.searchParams;
      assert.equal(q.get("code_challenge_method"), "S256");
      assert.equal(q.get("client_id"), CLIENT);
      const code = b64url(randomBytes(16));
      codes.set(code, { challenge: q.get("code_challenge"), redirect: q.get("redirect_uri") });
      res.writeHead(302, { location: `${q.get("redirect_uri")}?code=${code}&state=${encodeURIComponent(q.get("state"))}` });
      return res.end();
    }
    if (url.pathname === "/token" && req.method === "POST") {
      let data = "";
      req.on("data", (c) => (data += c));
      req.on("end", () => {
        seen.token++;
        const f = new URLSearchParams(data);
        const grant = codes.get(f.get("code"));
        codes.delete(f.get("code"));
        const ok = grant && grant.redirect === f.get("redirect_uri") &&
          b64url(createHash("sha256").update(f.get("code_verifier") ?? "").digest()) === grant.challenge;
        res.setHeader("content-type", "application/json");
        if (!ok) {
          res.statusCode = 400;
          return res.end(JSON.stringify({ error: "invalid_grant" }));
        }
        res.end(JSON.stringify({ id_token: idToken("radiologist-7"), token_type: "Bearer", expires_in: 600 }));
      });
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  return new Promise((resolve) => idp.listen(0, "127.0.0.1", () => {
    issuer = `http://127.0.0.1:${idp.address().port}`;
    resolve();
  }));
}

async function serve(extraEnv) {
  const { server, base } = await startServer(extraEnv);
  servers.push(server);
  return base;
}

before(async () => {
  await startIssuer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  servers.forEach((s) => s.kill());
  idp?.close();
});

test("JWT mode: 401 without a token, then Sign in (code + PKCE) and the film is classified", async () => {
  // The operator's step: save the issuer's jwks_uri document for the local server.
  const oidc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const jwksFile = path.join(tmpdir(), `xray-jwks-${process.pid}.json`);
  writeFileSync(jwksFile, await (await fetch(oidc.jwks_uri)).text());
  const base = await serve({
    XRAY_AUTH: "jwt", XRAY_JWT_ISSUER: issuer, XRAY_JWT_AUDIENCE: CLIENT, XRAY_JWT_CLIENT_ID: CLIENT,
    XRAY_JWKS_FILE: jwksFile,
  });
  const name = Object.keys(expected).find((k) => expected[k].label === "covid");
  const page = await browser.newPage();
  await page.goto(base);
  await page.waitForSelector("#sign-in");
  await page.setInputFiles("#file", path.join(root, "tests/fixtures/xrays", name));
  await page.waitForSelector("#error");
  assert.equal((await page.textContent("#error")).trim(), "unauthenticated");

  await page.click("#sign-in");
  await page.waitForFunction(() => document.getElementById("auth-state")?.textContent === "Signed in.");
  assert.deepEqual(seen, { authorize: 1, token: 1 });
  // The code and state are gone from the address bar; the token is nowhere in storage.
  assert.equal(new URL(page.url()).search, "");
  const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }));
  assert.ok(!stored.includes("eyJ"), stored);

  await page.setInputFiles("#file", path.join(root, "tests/fixtures/xrays", name));
  await page.waitForSelector("#label", { timeout: 30000 });
  assert.equal((await page.textContent("#label")).trim().toLowerCase(), "covid");
  await page.close();
});

test("IAM mode: the page says the API takes SigV4-signed requests and shows one", async () => {
  const base = await serve({ XRAY_AUTH: "iam" });
  const page = await browser.newPage();
  await page.goto(base);
  await page.waitForSelector("#auth-state");
  assert.match(await page.textContent("#auth"), /signed with AWS credentials \(SigV4\)/);
  assert.match(await page.textContent("#auth pre"), /--aws-sigv4 "aws:amz:REGION:execute-api"/);
  await page.close();
});
