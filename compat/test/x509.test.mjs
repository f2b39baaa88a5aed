// xsuaa.md §10 check 8: x509 bindings (§1.5), client_credentials over mTLS
// to certurl with xssec, revocation on unbind, and 401 without credentials.
// This is also identity.md §8 check 20 (XSUAA-style x509 variant, §6).

import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import { before, describe, test } from 'node:test';
import {
  XsuaaService, XsuaaSecurityContext, createSecurityContext, errors,
} from '@sap/xssec';

import {
  broker, decodeJwt, newWorkspace, request, selfSignedCertificate,
} from './harness.mjs';

const ws = newWorkspace();
const X509_PARAMS = {
  'credential-type': 'x509',
  x509: { 'key-length': 2048, validity: 7, 'validity-type': 'DAYS' },
};

// Token fetches without caches: every call must reach the broker.
const noCache = { tokenfetch: { cache: { enabled: false } } };

let instance;
let binding;
let creds;
let secretCreds; // a secret binding of another instance

/** Asserts that promise rejects with xssec's ResponseError and the status. */
async function rejectsWithStatus(promise, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof errors.ResponseError, `expected ResponseError, got ${err.constructor.name}: ${err.message}`);
    assert.equal(err.responseCode, status, err.responseText);
    return true;
  });
}

before(async () => {
  instance = await ws.provision({
    xsappname: 'x509-app',
    scopes: [{ name: '$XSAPPNAME.Read' }],
    authorities: ['$XSAPPNAME.Read'],
    'oauth2-configuration': { 'credential-types': ['binding-secret', 'x509'] },
  }, { name: 'x509-app-uaa' });
  binding = await ws.bind(instance.id, X509_PARAMS);
  creds = binding.credentials;
  const other = await ws.provision({ xsappname: 'x509-other' }, { name: 'x509-other-uaa' });
  ({ credentials: secretCreds } = await ws.bind(other.id));
});

describe('check 8: x509 binding', () => {
  test('credentials: certificate, key, certurl, no clientsecret', () => {
    assert.equal(creds['credential-type'], 'x509');
    assert.equal(creds.clientsecret, undefined, 'an x509 binding must not contain a clientsecret');
    assert.match(creds.certificate, /^-----BEGIN CERTIFICATE-----/);
    assert.match(creds.key, /-----BEGIN (RSA |)PRIVATE KEY-----/);
    // uaadomain has no "authentication." label here, so certurl = url (§9.3).
    assert.equal(creds.certurl, creds.url);
    for (const k of ['clientid', 'xsappname', 'url', 'uaadomain', 'identityzone', 'identityzoneid']) {
      assert.ok(creds[k], `credentials.${k} missing`);
    }
  });

  test('the certificate matches the key, has the requested size and validity, and chains to the broker CA', () => {
    const cert = new X509Certificate(creds.certificate);
    const key = createPrivateKey(creds.key);
    assert.ok(cert.checkPrivateKey(key), 'certificate and key do not match');
    assert.equal(key.asymmetricKeyDetails.modulusLength, 2048);
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    assert.ok(days > 6 && days <= 8, `validity ${days} days, expected about 7`);
    // The chain's last certificate must be issued by the broker CA.
    const pems = creds.certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    const last = new X509Certificate(pems[pems.length - 1]);
    const ca = new X509Certificate(fs.readFileSync(broker.caFile));
    assert.ok(last.checkIssued(ca) || last.fingerprint256 === ca.fingerprint256, 'certificate does not chain to ca.pem');
    assert.ok(last.verify(ca.publicKey) || last.fingerprint256 === ca.fingerprint256);
  });

  test('fetchClientCredentialsToken() over mTLS to certurl; the token validates', async () => {
    const service = new XsuaaService(creds, noCache);
    const res = await service.fetchClientCredentialsToken();
    const ctx = await createSecurityContext(service, { jwt: res.access_token });
    assert.ok(ctx instanceof XsuaaSecurityContext);
    assert.equal(ctx.getClientId(), creds.clientid);
    assert.equal(ctx.getUserName(), `client/${creds.clientid}`);
    assert.equal(ctx.checkLocalScope('Read'), true);
    const { payload } = decodeJwt(res.access_token);
    // cds treats client_credentials and client_x509 alike (§7).
    assert.ok(['client_credentials', 'client_x509'].includes(payload.grant_type), payload.grant_type);
  });

  test('fetchClientCredentialsToken({zid}) over mTLS', async () => {
    const service = new XsuaaService(creds, noCache);
    const res = await service.fetchClientCredentialsToken({ zid: creds.identityzoneid });
    const ctx = await createSecurityContext(service, { jwt: res.access_token });
    assert.equal(ctx.getZoneId(), creds.identityzoneid);
    assert.equal(ctx.checkLocalScope('Read'), true);
  });

  test('no secret and no certificate → 401', async () => {
    const res = await request(`${creds.certurl}/oauth/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      form: { grant_type: 'client_credentials', client_id: creds.clientid },
    });
    assert.equal(res.status, 401, res.text);
    assert.ok(res.json?.error, `error body expected, got ${res.text}`);
  });

  test("the certificate does not authenticate another instance's client → 401", async () => {
    const res = await request(`${creds.certurl}/oauth/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      cert: creds.certificate,
      key: creds.key,
      form: { grant_type: 'client_credentials', client_id: secretCreds.clientid },
    });
    assert.equal(res.status, 401, res.text);
  });

  test('a self-signed certificate with the same subject → 401', async () => {
    const issued = new X509Certificate(creds.certificate);
    const cn = /CN=([^\n,]+)/.exec(issued.subject)?.[1] ?? creds.clientid;
    const forged = selfSignedCertificate(cn);
    const res = await request(`${creds.certurl}/oauth/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      cert: forged.cert,
      key: forged.key,
      form: { grant_type: 'client_credentials', client_id: creds.clientid },
    });
    assert.equal(res.status, 401, res.text);
  });

  test('after unbind the same certificate is refused with 401', async () => {
    // Still accepted right before the unbind.
    await new XsuaaService(creds, noCache).fetchClientCredentialsToken();
    assert.equal(await ws.unbind(instance.id, binding.bindingId), 200);
    await rejectsWithStatus(new XsuaaService(creds, noCache).fetchClientCredentialsToken(), 401);
    await rejectsWithStatus(
      new XsuaaService(creds, noCache).fetchClientCredentialsToken({ zid: creds.identityzoneid }), 401);
  });
});
