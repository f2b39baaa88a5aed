// xsuaa.md §10 check 1: the fields of a secret binding (§1.2), and the
// service type xssec derives from them (§0.1).

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { createRequire } from 'node:module';
import xssec from '@sap/xssec';

import { broker, newWorkspace, request } from './harness.mjs';

// The heuristic the v3 API (and cds) use to pick the service type; the
// package has no "exports" map, so its modules can be required directly.
const createServiceFromCredentials = createRequire(import.meta.url)('@sap/xssec/src/v3/createService.js');

const ws = newWorkspace();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let instance;
let creds;

before(async () => {
  instance = await ws.provision({
    xsappname: 'bookshop',
    scopes: [{ name: '$XSAPPNAME.Display', description: 'display' }],
  }, { name: 'bookshop-uaa' });
  ({ credentials: creds } = await ws.bind(instance.id));
});

test('MUST fields: clientid, xsappname, url, uaadomain, clientsecret', () => {
  assert.match(creds.xsappname, /^bookshop!t\d+$/);
  assert.equal(creds.clientid, `sb-${creds.xsappname}`);
  // url: https origin without a path (sap-clients.md B4).
  const url = new URL(creds.url);
  assert.equal(url.protocol, 'https:');
  assert.equal(url.origin, creds.url.replace(/\/$/, ''), 'url must not have a path');
  // uaadomain: host[:port] without scheme; here the broker's own host (§9.3).
  assert.doesNotMatch(creds.uaadomain, /^[a-z]+:\/\//);
  assert.equal(creds.uaadomain, new URL(broker.url).host);
  // <uuid>$<base64url of 32 bytes> (44 characters including "=").
  assert.match(creds.clientsecret, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\$[A-Za-z0-9_-]{43}=$/);
});

test('SHOULD fields: zone, tenant, type and endpoint fields', () => {
  for (const k of ['identityzone', 'identityzoneid', 'tenantid', 'subaccountid', 'zoneid', 'tenantmode',
    'credential-type', 'serviceInstanceId', 'verificationkey', 'sburl', 'apiurl']) {
    assert.ok(creds[k], `credentials.${k} missing`);
  }
  assert.match(creds.identityzoneid, UUID);
  assert.equal(creds.tenantid, creds.identityzoneid);
  assert.equal(creds.zoneid, creds.identityzoneid);
  assert.equal(creds.subaccountid, creds.identityzoneid);
  assert.equal(creds.tenantmode, 'dedicated');
  assert.equal(creds['credential-type'], 'binding-secret');
  assert.equal(creds.serviceInstanceId, instance.id);
  assert.match(creds.verificationkey, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n?$/);
  // A binding never holds both a secret and a certificate (§0.6).
  assert.equal(creds.certificate, undefined);
  assert.equal(creds.key, undefined);
});

test('xssec builds an XsuaaService from the credentials (v3 createService)', () => {
  // v3's createServiceFromCredentials picks XsuaaService only when both
  // xsappname and uaadomain are present; otherwise it would be XsaService.
  const service = createServiceFromCredentials(creds);
  assert.ok(service instanceof xssec.XsuaaService, `got ${service?.constructor?.name}`);
});

test('the verificationkey is the key the JWKS publishes', async () => {
  const res = await request(`https://${creds.uaadomain}/token_keys?zid=${creds.identityzoneid}`);
  assert.equal(res.status, 200, res.text);
  const keys = res.json.keys;
  assert.ok(Array.isArray(keys) && keys.length > 0);
  for (const k of keys) {
    // Every key needs kty/n/e/kid, or xssec rejects the whole set (§0.3).
    assert.equal(k.kty, 'RSA');
    assert.ok(k.n && k.e && k.kid, JSON.stringify(k));
  }
  const norm = (pem) => pem.replace(/\s+/g, '');
  assert.ok(keys.some((k) => k.value && norm(k.value) === norm(creds.verificationkey)),
    'no JWKS key has value === credentials.verificationkey');
});

test('a second binding gets its own secret for the same client', async () => {
  const { credentials: other } = await ws.bind(instance.id);
  assert.equal(other.clientid, creds.clientid);
  assert.equal(other.xsappname, creds.xsappname);
  assert.notEqual(other.clientsecret, creds.clientsecret);
});
