// The README's "Local quick start" (issue 9), run as a developer would type
// it: every command of the section's marked blocks, literally and in order,
// in a copy of the repository, each block in a bash of its own (a
// "terminal"). Then Chromium opens the app the section names, alice logs in
// and sees the page, and bob, after signing out, gets 403.
//
// Substituted, and only these: the ports (the broker's 8443 and the app's
// 5000 become free ports, through BROKER_ADDR, BROKER_PUBLIC_URL,
// BROKER_IDENTITY_URL, BROKER_URL and PORT in the terminals' environment),
// the places of temporary things (the copy of the repository, HOME; Go's
// and npm's caches stay where they are), Node 22 first on PATH (approuter
// 23 needs it; the machine's node is 20), and the browser step: Chromium
// trusting data/ca.pem through an NSS database, as the section tells.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { submitLogin } from '../lib/approuter.mjs';
import { repoRoot } from '../lib/launcher.mjs';
import { artifactsDir, freePort, launchBrowser, node22, scratchDir } from '../lib/harness.mjs';
import { answers, copyRepository, openTerminal, quickstartBlocks, readmeSection } from '../lib/quickstart.mjs';

const title = 'Local quick start: log in to your app';
// The users of quickstart/users.yaml, as the section names them.
const alice = { username: 'alice', password: 'alice-pass' };
const bob = { username: 'bob', password: 'bob-pass' };

/**
 * The environment of a terminal: the developer's, without what the test
 * run adds (npm's script variables, E2E_…), with a fresh HOME, the ports of
 * this run, and Node 22 first on PATH. NODE_EXTRA_CA_CERTS stays: npm may
 * need it to reach the registry (it names the machine's bundle, plus the
 * suite broker's CA, which trusts nothing of the quick start's broker);
 * the README's approuter command sets its own.
 */
function terminalEnv({ home, brokerPort, appPort }) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NPM_|E2E_|BROKER_|VCAP_|XDG_)/.test(k)) continue;
    if (['INIT_CWD', 'NODE_OPTIONS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'PORT', 'HOME',
      'VCAP_SERVICES_FILE_PATH', 'SERVICE_BINDING_ROOT'].includes(k)) continue;
    env[k] = v;
  }
  // Go's and npm's caches and settings stay the developer's (a cold Go
  // build cache would cost minutes).
  const go = JSON.parse(execFileSync('go', ['env', '-json', 'GOCACHE', 'GOMODCACHE', 'GOPATH', 'GOENV'], { encoding: 'utf8' }));
  Object.assign(env, go, {
    HOME: home,
    npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
    NPM_CONFIG_USERCONFIG: process.env.npm_config_userconfig ?? path.join(os.homedir(), '.npmrc'),
    PATH: `${path.dirname(node22)}${path.delimiter}${process.env.PATH}`,
    BROKER_ADDR: `127.0.0.1:${brokerPort}`,
    BROKER_PUBLIC_URL: `https://localhost:${brokerPort}`,
    BROKER_IDENTITY_URL: `https://127.0.0.1:${brokerPort}`,
    BROKER_URL: `https://localhost:${brokerPort}`,
    PORT: String(appPort),
  });
  return env;
}

describe(`README "${title}"`, () => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  let section;
  let blocks;
  let work;
  let ports;
  let appUrl;
  let brokerOrigin;
  let browser;
  const terminals = [];

  after(async () => {
    for (const t of terminals.reverse()) await t.close();
  });

  /** A URL of the README on this run's ports. */
  function localUrl(readmeUrl) {
    const u = new URL(readmeUrl);
    const port = { 8443: ports.broker, 5000: ports.app }[u.port];
    assert.ok(port, `the README names ${readmeUrl}; the test knows the ports 8443 (broker) and 5000 (app)`);
    u.port = String(port);
    return u.toString().replace(/\/$/, '');
  }

  test('the section has marked shell blocks, commands that keep running last', () => {
    section = readmeSection(readme, title);
    blocks = quickstartBlocks(section);
    assert.ok(blocks.length >= 2, 'a terminal for the broker and one for the rest');
    const all = blocks.flatMap((b) => b.commands);
    assert.ok(all.filter((c) => c.keepsRunning).length >= 2, 'the broker and the app keep running');
    assert.match(section, /Open (http:\/\/localhost:\d+)/);
  });

  test('every command of the section runs, in order, in a copy of the repository', async () => {
    assert.ok(blocks, 'the section was read');
    const base = scratchDir('quickstart');
    work = path.join(base, 'repo');
    copyRepository(repoRoot, work);
    const home = path.join(base, 'home');
    fs.mkdirSync(home);
    ports = { broker: await freePort(), app: await freePort() };
    const env = terminalEnv({ home, brokerPort: ports.broker, appPort: ports.app });
    brokerOrigin = `https://localhost:${ports.broker}`;

    for (const [i, block] of blocks.entries()) {
      const name = `quickstart-terminal-${i + 1}`;
      const terminal = openTerminal(name, { cwd: work, env, logFile: path.join(base, `${name}.log`) });
      terminals.push(terminal);
      for (const { text, keepsRunning } of block.commands) {
        if (!keepsRunning) {
          await terminal.run(text);
          continue;
        }
        const url = localUrl(keepsRunning);
        await terminal.start(text, () => {
          // An https server must present a certificate of the quick start's CA.
          const caFile = path.join(work, 'data', 'ca.pem');
          if (!url.startsWith('https:')) return answers(url);
          return fs.existsSync(caFile) ? answers(url, { ca: fs.readFileSync(caFile) }) : Promise.resolve(false);
        });
      }
    }
    appUrl = localUrl(section.match(/Open (http:\/\/localhost:\d+)/)[1]);
    assert.ok(fs.existsSync(path.join(work, 'quickstart', 'approuter', 'default-env.json')), 'default-env.json written');
  });

  test('alice logs in on the broker\'s page and sees the app, greeted by name', async () => {
    assert.ok(appUrl, 'the commands ran');
    browser = await launchBrowser('quickstart', { caFile: path.join(work, 'data', 'ca.pem') });
    const { page } = browser;
    await page.goto(appUrl);
    assert.equal(new URL(page.url()).origin, brokerOrigin, `on the broker's login page, not ${page.url()}`);
    assert.ok(await page.locator('input[name="password"]').isVisible(), 'the login form');

    const appOrigin = new URL(appUrl).origin;
    const res = await submitLogin(browser, alice, (u) => u.origin === appOrigin && u.pathname === '/index.html');
    assert.equal(res.status(), 200, await res.text());
    assert.match(await page.locator('#welcome').innerText(), /Welcome to the bookshop/);
    // The page asks approuter's user API who is signed in.
    await page.locator('#user').filter({ hasText: 'alice' }).waitFor();
    assert.equal(await page.locator('#user').innerText(), 'Alice Doe (alice)');
    fs.mkdirSync(artifactsDir, { recursive: true });
    await page.screenshot({ path: path.join(artifactsDir, 'quickstart.png') });
  });

  test('after signing out, bob logs in and gets 403', async () => {
    assert.ok(browser, 'alice logged in');
    const { page } = browser;
    const appOrigin = new URL(appUrl).origin;
    await Promise.all([
      page.waitForURL((u) => u.origin === appOrigin && u.pathname === '/signed-out.html'),
      page.click('#logout'),
    ]);
    assert.match(await page.locator('#signed-out').innerText(), /signed out/);

    await page.goto(appUrl);
    assert.equal(new URL(page.url()).origin, brokerOrigin, 'the broker\'s session ended: the login form again');
    const res = await submitLogin(browser, bob, (u) => u.origin === appOrigin && u.pathname === '/index.html');
    assert.equal(res.status(), 403, await res.text());
  });
});

// The runner itself: what makes a changed or broken README command fail.
describe('the quick start runner', () => {
  const fence = (label, body) => `<!-- quickstart: ${label} -->\n\`\`\`sh\n${body}\n\`\`\`\n`;

  test('reads the commands of marked blocks: continued lines joined, comments and blank lines skipped', () => {
    const blocks = quickstartBlocks(`intro\n${fence('one', '# a comment\necho a \\\n  b\n\nserve   # keeps running: http://localhost:5000')}`);
    assert.deepEqual(blocks, [{
      label: 'one',
      commands: [
        { text: 'echo a \\\n  b', keepsRunning: null },
        { text: 'serve   # keeps running: http://localhost:5000', keepsRunning: 'http://localhost:5000' },
      ],
    }]);
  });

  test('refuses a section it cannot run completely', () => {
    for (const [name, section, message] of [
      ['no marked block', 'text only', /no block marked/],
      ['an unmarked block', `${fence('one', 'true')}\n\`\`\`sh\nrm -rf data\n\`\`\`\n`, /2 fenced blocks but only 1 marked/],
      ['a keeps-running command before another', fence('one', 'serve # keeps running: http://localhost:5000\ntrue'), /must be the last/],
    ]) {
      assert.throws(() => quickstartBlocks(section), message, name);
    }
    assert.throws(() => readmeSection('## Other\n', title), /no section/);
  });

  test('a terminal keeps cd and export between commands; a failing command fails', async () => {
    const dir = scratchDir('terminal');
    fs.mkdirSync(path.join(dir, 'sub'));
    const t = openTerminal('terminal-check', { cwd: dir, env: { PATH: process.env.PATH }, logFile: path.join(dir, 'log') });
    try {
      await t.run('cd sub');
      await t.run('export GREETING=hello');
      await t.run('test "$(basename "$PWD")" = sub && test "$GREETING" = hello');
      await t.run('cat >/dev/null'); // stdin is /dev/null, never the next commands
      await assert.rejects(t.run('ls does-not-exist'), /"ls does-not-exist" exited with status 2/);
      await t.run('true');
      await assert.rejects(t.start('sleep 0 # keeps running: http://localhost:5000', async () => false),
        /should keep running but exited with status 0/);
    } finally {
      await t.close();
    }
  });
});
