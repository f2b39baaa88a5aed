// identity.md §8.1 checks 1–5: the credentials of identity/application
// bindings (SECRET, X509_GENERATED, X509_PROVIDED), certificate contents,
// stable subjects with app-identifier, and invalid parameters (OSB 400).

import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import { before, describe, test } from 'node:test';
import {
  IdentityService, createSecurityContext,
} from '@sap/xssec';

import {
  broker, decodeJwt, newWorkspace, selfSignedCertificate,
} from './harness.mjs';

const ws = newWorkspace();
const X509 = {
  'credential-type': 'X509_GENERATED', 'key-length': 2048, validity: 1, 'validity-type': 'DAYS', 'app-identifier': 'srv',
};
const noCache = { tokenfetch: { cache: { enabled: false } } };

let instance;
let secretCreds;
let x509Creds;

/** The PEM blocks of a chain, leaf first. */
function pemBlocks(pem) {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The leaf (first certificate) of credentials.certificate. */
function leafOf(creds) {
  return new X509Certificate(pemBlocks(creds.certificate)[0]);
}

before(async () => {
  instance = await ws.provision({}, { name: 'ias-binding', offering: 'identity' });
  ({ credentials: secretCreds } = await ws.bind(instance.id));
  ({ credentials: x509Creds } = await ws.bind(instance.id, X509));
});

describe('check 1: SECRET binding (no parameters)', () => {
  test('fields of identity.md §1.2/§1.3', () => {
    const c = secretCreds;
    assert.equal(c['credential-type'], 'SECRET');
    assert.equal(typeof c.clientid, 'string');
    assert.ok(c.clientid.length > 0);
    // No dots: the Java library cuts audiences at the first '.'.
    assert.ok(!c.clientid.includes('.'), c.clientid);
    assert.equal(typeof c.clientsecret, 'string');
    assert.ok(!c.clientsecret.includes(':'), 'approuter also sends the secret through HTTP Basic');
    assert.equal(c.url, broker.identityUrl);
    const host = new URL(c.url).host;
    assert.ok(Array.isArray(c.domains), 'domains must be an array');
    assert.deepEqual(c.domains, [host]);
    assert.equal(c.domain, c.domains[0]);
    assert.match(c.app_tid, /^[0-9a-f-]{36}$/);
    assert.equal(c.zone_uuid, c.app_tid);
    assert.equal(c.authorization_endpoint, `${c.url}/oauth2/authorize`);
    assert.equal(c.end_session_endpoint, `${c.url}/oauth2/logout`);
    assert.equal(c.certificate, undefined);
    assert.equal(c.key, undefined);
  });

  test('one client per instance: a second binding has the same clientid, another secret', async () => {
    const { credentials: again } = await ws.bind(instance.id);
    assert.equal(again.clientid, secretCreds.clientid);
    assert.notEqual(again.clientsecret, secretCreds.clientsecret);
  });

  test('the credentials work unchanged with new IdentityService()', async () => {
    const service = new IdentityService(secretCreds, noCache);
    const { access_token: jwt } = await service.fetchClientCredentialsToken();
    const ctx = await createSecurityContext(service, { jwt });
    assert.equal(ctx.token.azp, secretCreds.clientid);
  });
});

describe('check 2: X509_GENERATED binding', () => {
  test('no clientsecret; certificate, key, certificate_expires_at', () => {
    const c = x509Creds;
    assert.equal(c['credential-type'], 'X509_GENERATED');
    assert.equal(c.clientsecret, undefined);
    assert.equal(c.clientid, secretCreds.clientid);
    for (const k of ['url', 'domains', 'app_tid', 'authorization_endpoint', 'end_session_endpoint']) {
      assert.deepEqual(c[k], secretCreds[k], k);
    }
    // Real line breaks after JSON decoding, never a literal backslash-n.
    assert.ok(!c.certificate.includes('\\n'), 'certificate is double-escaped');
    assert.match(c.key, /^-----BEGIN RSA PRIVATE KEY-----\n/);
  });

  test('the chain parses, the leaf matches the key and chains to the broker CA', () => {
    const blocks = pemBlocks(x509Creds.certificate);
    assert.ok(blocks.length >= 2, `expected leaf + intermediate, got ${blocks.length} block(s)`);
    const chain = blocks.map((b) => new X509Certificate(b));
    assert.ok(chain[0].checkPrivateKey(createPrivateKey(x509Creds.key)), 'leaf and key do not match');
    for (let i = 0; i + 1 < chain.length; i++) {
      assert.ok(chain[i].checkIssued(chain[i + 1]), `block ${i} is not issued by block ${i + 1}`);
      assert.ok(chain[i].verify(chain[i + 1].publicKey), `block ${i}: bad signature`);
    }
    const ca = new X509Certificate(fs.readFileSync(broker.caFile));
    const last = chain[chain.length - 1];
    assert.ok(last.checkIssued(ca) || last.fingerprint256 === ca.fingerprint256, 'the chain does not end at ca.pem');
  });

  test('leaf: clientAuth, CA:FALSE, key-length, validity, certificate_expires_at, app-identifier', () => {
    const leaf = leafOf(x509Creds);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), `extended key usage ${JSON.stringify(leaf.keyUsage)}`);
    assert.equal(createPublicKey(leaf.publicKey.export({ type: 'spki', format: 'pem' })).asymmetricKeyDetails.modulusLength, 2048);
    const notAfter = Date.parse(leaf.validTo);
    const days = (notAfter - Date.now()) / 86_400_000;
    assert.ok(days > 0.95 && days <= 1.001, `notAfter − now = ${days} days, expected about 1`);
    assert.match(x509Creds.certificate_expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(Date.parse(x509Creds.certificate_expires_at), notAfter);
    const cn = /CN=([^\n]+)/.exec(leaf.subject)?.[1] ?? '';
    assert.ok(cn.endsWith('/srv'), `CN ${cn} does not carry the app-identifier`);
  });

  test('key-length 4096', async () => {
    const { credentials } = await ws.bind(instance.id, { 'credential-type': 'X509_GENERATED', 'key-length': 4096 });
    assert.equal(createPrivateKey(credentials.key).asymmetricKeyDetails.modulusLength, 4096);
    assert.ok(leafOf(credentials).checkPrivateKey(createPrivateKey(credentials.key)));
  });
});

describe('check 3: subjects with and without app-identifier', () => {
  test('same app-identifier → same subject, different keys', async () => {
    const { credentials: again } = await ws.bind(instance.id, X509);
    const [l1, l2] = [leafOf(x509Creds), leafOf(again)];
    assert.equal(l2.subject, l1.subject);
    assert.notEqual(l2.fingerprint256, l1.fingerprint256);
    assert.notEqual(again.key, x509Creds.key);
  });

  test('without app-identifier → different subjects', async () => {
    const plain = { 'credential-type': 'X509_GENERATED', 'key-length': 2048, validity: 1, 'validity-type': 'DAYS' };
    const { credentials: c1 } = await ws.bind(instance.id, plain);
    const { credentials: c2 } = await ws.bind(instance.id, plain);
    assert.notEqual(leafOf(c1).subject, leafOf(c2).subject);
    assert.notEqual(leafOf(c1).subject, leafOf(x509Creds).subject);
  });
});

describe('check 4: invalid parameters → 400', () => {
  const cases = [
    ['validity-type WEEKS', { ...X509, 'validity-type': 'WEEKS' }, /validity-type/],
    ['key-length 1024', { ...X509, 'key-length': 1024 }, /key-length/],
    ['validity 0', { ...X509, validity: 0 }, /validity/],
    ['21-character app-identifier', { ...X509, 'app-identifier': 'a'.repeat(21) }, /app-identifier/],
    ['unknown credential-type', { 'credential-type': 'PASSWORD' }, /credential-type/],
    ['malformed X509_PROVIDED PEM', {
      'credential-type': 'X509_PROVIDED',
      certificate: '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
    }, /certificate/],
    ['X509_PROVIDED without certificate', { 'credential-type': 'X509_PROVIDED' }, /certificate/],
  ];
  for (const [name, params, message] of cases) {
    test(name, async () => {
      const { res } = await ws.bind(instance.id, params, { expectStatus: 400 });
      assert.match(res.json?.description ?? '', message, res.text);
    });
  }

  test('instance parameters: consumed-services naming no instance → 400', async () => {
    const { res } = await ws.provision({ 'consumed-services': [{ 'service-instance-name': 'no-such-instance' }] },
      { offering: 'identity', expectStatus: 400 });
    assert.match(res.json?.description ?? '', /no-such-instance/);
  });
});

describe('check 5: X509_PROVIDED', () => {
  const provided = selfSignedCertificate('compat-provided');

  test('returns the given certificate and no key; it authenticates over mTLS', async () => {
    const { credentials } = await ws.bind(instance.id, { 'credential-type': 'X509_PROVIDED', certificate: provided.cert });
    assert.equal(credentials['credential-type'], 'X509_PROVIDED');
    assert.equal(credentials.certificate, provided.cert);
    assert.equal(credentials.key, undefined);
    assert.equal(credentials.clientsecret, undefined);
    assert.equal(credentials.clientid, secretCreds.clientid);
    // The xssec README: for X509_PROVIDED the application adds its key.
    const service = new IdentityService({ ...credentials, key: provided.key }, noCache);
    const { access_token: jwt } = await service.fetchClientCredentialsToken();
    const { payload } = decodeJwt(jwt);
    const x5t = Buffer.from(new X509Certificate(provided.cert).fingerprint256.replaceAll(':', ''), 'hex').toString('base64url');
    assert.equal(payload.cnf?.['x5t#S256'], x5t);
    await createSecurityContext(service, { jwt });
  });

  test('the same certificate in a second binding is refused', async () => {
    const { res } = await ws.bind(instance.id, { 'credential-type': 'X509_PROVIDED', certificate: provided.cert }, { expectStatus: 400 });
    assert.match(res.json?.description ?? '', /certificate/);
  });
});
