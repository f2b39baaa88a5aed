// identity.md §8.2 checks 14 and 15: unbind ends the credentials at once
// (401 invalid_client at /oauth2/token; once an instance has no binding
// left, the JWKS refuses its x-client_id, so a fresh IdentityService with
// the old credentials gets WrongAudienceError), and rebind rotation for
// SECRET and X509_GENERATED with a stable app-identifier.
//
// xssec caches discovery per URL and the JWKS per service object (§7):
// every check uses a new IdentityService and fetch* methods without the
// token cache.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { IdentityService, createSecurityContext, errors } from '@sap/xssec';

import { newWorkspace, request } from './harness.mjs';

const ws = newWorkspace();
const noCache = { tokenfetch: { cache: { enabled: false } } };
const X509 = {
  'credential-type': 'X509_GENERATED', 'key-length': 2048, validity: 1, 'validity-type': 'DAYS', 'app-identifier': 'srv',
};

const fetchToken = async (creds) => (await new IdentityService(creds, noCache).fetchClientCredentialsToken()).access_token;

function invalidClient(err) {
  assert.ok(err instanceof errors.ResponseError, `expected ResponseError, got ${err.constructor.name}: ${err.message}`);
  assert.equal(err.responseCode, 401, err.responseText);
  assert.equal(JSON.parse(err.responseText).error, 'invalid_client');
  return true;
}

function wrongAudience(err) {
  assert.ok(err instanceof errors.WrongAudienceError, `expected WrongAudienceError, got ${err.constructor.name}: ${err.message}`);
  return true;
}

/** A plain mTLS token request with a binding's certificate. */
function mtlsRequest(creds) {
  return request(`${creds.url}/oauth2/token`, {
    method: 'POST',
    cert: creds.certificate,
    key: creds.key,
    form: { grant_type: 'client_credentials', client_id: creds.clientid },
  });
}

const subjectOf = (creds) => new X509Certificate(creds.certificate).subject;

describe('check 14: unbind', () => {
  test('SECRET: the old secret gets 401 invalid_client; an old token no longer validates', async () => {
    const inst = await ws.provision({}, { name: 'ias-unbind-secret', offering: 'identity' });
    const { bindingId, credentials } = await ws.bind(inst.id);
    const jwt = await fetchToken(credentials);
    await createSecurityContext(new IdentityService(credentials), { jwt });

    assert.equal(await ws.unbind(inst.id, bindingId), 200);
    await assert.rejects(new IdentityService(credentials, noCache).fetchClientCredentialsToken(), invalidClient);
    await assert.rejects(createSecurityContext(new IdentityService(credentials), { jwt }), (err) => {
      wrongAudience(err);
      assert.match(err.message, /online validation/);
      return true;
    });
  });

  test('X509_GENERATED: the old certificate gets 401 invalid_client (xssec and plain https)', async () => {
    const inst = await ws.provision({}, { name: 'ias-unbind-x509', offering: 'identity' });
    const { bindingId, credentials } = await ws.bind(inst.id, X509);
    const jwt = await fetchToken(credentials);
    assert.equal((await mtlsRequest(credentials)).status, 200);

    assert.equal(await ws.unbind(inst.id, bindingId), 200);
    await assert.rejects(new IdentityService(credentials, noCache).fetchClientCredentialsToken(), invalidClient);
    const res = await mtlsRequest(credentials);
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json?.error, 'invalid_client');
    await assert.rejects(createSecurityContext(new IdentityService(credentials), { jwt }), wrongAudience);
  });

  test('deprovision: the JWKS refuses the client', async () => {
    const inst = await ws.provision({}, { name: 'ias-deprovision', offering: 'identity' });
    const { credentials } = await ws.bind(inst.id);
    const jwt = await fetchToken(credentials);
    assert.equal(await ws.deprovision(inst.id), 200);
    await assert.rejects(new IdentityService(credentials, noCache).fetchClientCredentialsToken(), invalidClient);
    await assert.rejects(createSecurityContext(new IdentityService(credentials), { jwt }), wrongAudience);
  });
});

describe('check 15: rebind rotation', () => {
  test('SECRET: the new secret works at once, the old one fails after its unbind', async () => {
    const inst = await ws.provision({}, { name: 'ias-rotate-secret', offering: 'identity' });
    const old = await ws.bind(inst.id);
    await fetchToken(old.credentials);
    const fresh = await ws.bind(inst.id);
    assert.equal(fresh.credentials.clientid, old.credentials.clientid);
    assert.notEqual(fresh.credentials.clientsecret, old.credentials.clientsecret);
    // Both work while both bindings exist (no restart needed in between).
    const jwt = await fetchToken(fresh.credentials);
    await fetchToken(old.credentials);

    assert.equal(await ws.unbind(inst.id, old.bindingId), 200);
    await assert.rejects(new IdentityService(old.credentials, noCache).fetchClientCredentialsToken(), invalidClient);
    const again = await fetchToken(fresh.credentials);
    await createSecurityContext(new IdentityService(fresh.credentials), { jwt: again });
    await createSecurityContext(new IdentityService(fresh.credentials), { jwt });
  });

  test('X509_GENERATED with app-identifier: same subject, the old certificate is refused after its unbind', async () => {
    const inst = await ws.provision({}, { name: 'ias-rotate-x509', offering: 'identity' });
    const old = await ws.bind(inst.id, X509);
    await fetchToken(old.credentials);
    const fresh = await ws.bind(inst.id, X509);
    assert.equal(subjectOf(fresh.credentials), subjectOf(old.credentials));
    assert.notEqual(new X509Certificate(fresh.credentials.certificate).fingerprint256,
      new X509Certificate(old.credentials.certificate).fingerprint256);
    await fetchToken(fresh.credentials);

    assert.equal(await ws.unbind(inst.id, old.bindingId), 200);
    // Same subject DN, but the old certificate's fingerprint is gone.
    await assert.rejects(new IdentityService(old.credentials, noCache).fetchClientCredentialsToken(), invalidClient);
    assert.equal((await mtlsRequest(old.credentials)).status, 401);
    const jwt = await fetchToken(fresh.credentials);
    await createSecurityContext(new IdentityService(fresh.credentials), { jwt });
    assert.equal((await mtlsRequest(fresh.credentials)).status, 200);
  });
});
