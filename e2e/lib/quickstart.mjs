// The README's "Local quick start" as the test runs it: the marked shell
// blocks of the section, a copy of the repository to run them in, and
// "terminals" (one bash each) that run the commands literally, one after
// the other, keeping the shell's state (cd, export) between them.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import readline from 'node:readline';

import { registerPid, tail } from './harness.mjs';

/** The marker of a block the test runs: an HTML comment right before the fence. */
const blockPattern = /<!--\s*quickstart:\s*([^>]*?)\s*-->\s*\n```sh\n([\s\S]*?)\n```/g;

/** The trailing comment of a command that does not return, naming where it serves. */
const keepsRunningPattern = /#\s*keeps running:\s*(\S+)\s*$/;

/**
 * The text of the section "## <title>" of a markdown document, up to the
 * next second-level heading.
 * @param {string} markdown
 * @param {string} title
 */
export function readmeSection(markdown, title) {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${title}`);
  if (start < 0) throw new Error(`README has no section "## ${title}"`);
  let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  if (end < 0) end = lines.length;
  return lines.slice(start + 1, end).join('\n');
}

/**
 * The commands of the marked blocks of a section, block by block. A
 * command is a line (lines ending in a backslash continue it); blank lines
 * and comment lines are not commands. A command whose trailing comment says
 * "keeps running: URL" does not return; it must be the last of its block.
 *
 * Every fenced block of the section must be marked: a block the test does
 * not run would be a command nobody checks.
 *
 * @param {string} section
 * @returns {{label: string, commands: {text: string, keepsRunning: string|null}[]}[]}
 */
export function quickstartBlocks(section) {
  const fences = (section.match(/^```/gm) ?? []).length / 2;
  const blocks = [];
  for (const [, label, body] of section.matchAll(blockPattern)) {
    const commands = [];
    let pending = '';
    for (const line of body.split('\n')) {
      if (!pending && (line.trim() === '' || line.trim().startsWith('#'))) continue;
      pending += pending ? `\n${line}` : line;
      if (line.endsWith('\\')) continue;
      const m = pending.match(keepsRunningPattern);
      commands.push({ text: pending, keepsRunning: m ? m[1] : null });
      pending = '';
    }
    if (pending) throw new Error(`block "${label}" ends in a continued line: ${pending}`);
    commands.forEach((c, i) => {
      if (c.keepsRunning && i !== commands.length - 1) {
        throw new Error(`"${c.text}" keeps running, so it must be the last command of block "${label}"`);
      }
    });
    blocks.push({ label, commands });
  }
  if (blocks.length === 0) throw new Error('the section has no block marked <!-- quickstart: … -->');
  if (blocks.length !== fences) {
    throw new Error(`the section has ${fences} fenced blocks but only ${blocks.length} marked <!-- quickstart: … --> ones`);
  }
  return blocks;
}

/**
 * Copies the repository to dest, leaving out what a fresh clone has not:
 * .git, node_modules, the broker's data and build output, and the files the
 * quick start writes.
 * @param {string} repoRoot
 * @param {string} dest
 */
export function copyRepository(repoRoot, dest) {
  const skip = new Set(['.git', 'data', 'broker.bin', path.join('quickstart', 'approuter', 'default-env.json')]);
  fs.cpSync(repoRoot, dest, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(repoRoot, src);
      return !skip.has(rel) && path.basename(src) !== 'node_modules';
    },
  });
}

/**
 * A bash that runs commands the way a terminal does: one after the other
 * in the same shell, so cd and export carry over. Each command is run with
 * eval in that shell, with /dev/null as its stdin (the commands arrive on
 * another descriptor, which a command must not eat), and its exit status
 * is reported on a separate pipe. Output goes to a log file.
 *
 * The shell leads its own process group, registered with the launcher;
 * close() ends the group (the shell and whatever its commands started).
 *
 * @param {string} name for the log file
 * @param {{cwd: string, env: object, logFile: string}} opts
 */
export function openTerminal(name, { cwd, env, logFile }) {
  // fd 0 carries the commands (NUL-terminated) and is moved to fd 4, fd 3
  // carries the statuses; neither is left open for the commands.
  const program = [
    'exec 4<&0 </dev/null',
    "while IFS= read -r -d '' __quickstart_cmd <&4; do",
    '  eval "$__quickstart_cmd" 3>&- 4<&-',
    "  printf '%s\\n' \"$?\" >&3",
    'done',
  ].join('\n');
  const log = fs.openSync(logFile, 'a');
  const child = spawn('bash', ['--noprofile', '--norc', '-c', program], {
    cwd, env, detached: true, stdio: ['pipe', log, log, 'pipe'],
  });
  fs.closeSync(log);
  registerPid(child.pid);
  child.stdin.on('error', () => {});

  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const waiting = [];
  const statuses = [];
  readline.createInterface({ input: child.stdio[3] }).on('line', (line) => {
    const status = Number(line);
    if (waiting.length) waiting.shift()(status);
    else statuses.push(status);
  });
  exitPromise.then(() => { while (waiting.length) waiting.shift()(null); });

  const nextStatus = () => {
    if (statuses.length) return Promise.resolve(statuses.shift());
    if (exited) return Promise.resolve(null);
    return new Promise((resolve) => waiting.push(resolve));
  };

  /** Sends one command; the returned promise is its exit status (null if the shell died). */
  const send = (text) => {
    fs.appendFileSync(logFile, `\n$ ${text}\n`);
    child.stdin.write(`${text}\0`);
    return nextStatus();
  };

  const groupAlive = () => {
    try { process.kill(-child.pid, 0); return true; } catch { return false; }
  };

  const close = async () => {
    child.stdin.end();
    for (const [signal, waitMs] of [['SIGTERM', 10_000], ['SIGKILL', 5_000]]) {
      if (!groupAlive()) break;
      try { process.kill(-child.pid, signal); } catch { /* gone */ }
      const deadline = Date.now() + waitMs;
      while (groupAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.race([exitPromise, new Promise((r) => setTimeout(r, 1000))]);
  };

  return {
    name,
    logFile,
    /**
     * Runs a command to its end and throws unless it exits with 0.
     * @param {string} text
     */
    async run(text) {
      const status = await send(text);
      if (status !== 0) {
        throw new Error(`"${text}" exited with status ${status} in ${name}\n--- ${name} (${logFile}) ---\n${tail(logFile, 40)}`);
      }
    },
    /**
     * Starts a command that keeps running and waits until ready() is
     * true; throws if the command ends first or is not ready in time.
     * @param {string} text
     * @param {() => Promise<boolean>} ready
     * @param {{timeoutMs?: number}} [opts]
     */
    async start(text, ready, { timeoutMs = 90_000 } = {}) {
      let ended = null;
      send(text).then((status) => { ended = { status }; });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (ended) {
          throw new Error(`"${text}" should keep running but exited with status ${ended.status} in ${name}\n`
            + `--- ${name} (${logFile}) ---\n${tail(logFile, 40)}`);
        }
        if (await ready()) return;
        if (Date.now() > deadline) {
          throw new Error(`"${text}" not ready after ${timeoutMs} ms in ${name}\n--- ${name} (${logFile}) ---\n${tail(logFile, 40)}`);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    },
    close,
  };
}

/**
 * Whether url answers an HTTP request at all (any status): the server is
 * listening. For https, the server certificate must verify against ca.
 * @param {string} url
 * @param {{ca?: Buffer}} [opts]
 */
export function answers(url, { ca } = {}) {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const req = mod.get(url, { agent: false, timeout: 2000, ...(ca ? { ca } : {}) }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}
