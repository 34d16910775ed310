#!/usr/bin/env node
// The browser peer of wavecast's integration tests: Debian's Chromium (/usr/bin/chromium),
// headless, driven by playwright-core, running livekit-client from its UMD build on a page
// served from 127.0.0.1. Never downloads a browser.
//
//   node peer.mjs publish   --url WS --token JWT [--seconds N] [--video FILE.y4m] [--audio FILE.wav]
//                           [--downscale-after S] [--video-codec vp8|vp9|h264|av1]
//                           [--simulcast true|false]
//   node peer.mjs subscribe --url WS --token JWT --participant IDENTITY [--seconds N]
//                           [--element-size WxH] [--video-only]
//   node peer.mjs data      --url WS --token JWT [--seconds N]
//   each with [--e2ee-key PASSPHRASE]: end-to-end encryption with livekit-client's
//   ExternalE2EEKeyProvider and its e2ee worker (served beside the page); data mode encrypts
//   the data channel too.
//
// publish: joins, publishes Chromium's fake camera and microphone (from the given files, or
// Chromium's built-in pattern and beep) with livekit-client's default settings, prints
// `READY {json}`, keeps publishing for --seconds or until a line `stop` (or EOF) on stdin, then
// prints `RESULT {json}` with the encoders' figures and the camera layers' timeline. --downscale-after S halves the camera's
// capture size S seconds after READY (what libwebrtc's adaptation does under pressure) and prints
// `SCALED {json}`. --video-codec and --simulcast set livekit-client's publishDefaults (videoCodec,
// simulcast); READY's `video_layers` then names the codec each camera RTP stream encodes with
// (from the sender's statistics), and RESULT's `video_layers[].codec` too.
// subscribe: joins, waits for the participant's video and audio (video alone with --video-only),
// measures them for --seconds (frames, picture size, tone frequency, and the receiver's codec and
// decoded frame size each second: `received`) and prints `RESULT {json}`. --element-size sets the
// <video> element's CSS size (default 640x360): adaptive stream asks for the layer that fits it.
// data: joins with the data plane only (data streams, RPC, attributes: data.js), prints
// `READY {json}`, then runs one command per stdin line (the Python peers' line protocol, see
// data.js), each answered `OK <command>` or `ERR <command> <why>`, until EOF or --seconds
// (default here: 120) of silence.
// A failure prints `ERROR message` and exits 1. The page's console goes to stderr.
//
// Networking: the page talks to the URL it is given and nothing else (no ICE servers);
// Chromium's own background traffic is switched off by the flags below.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.WAVECAST_CHROMIUM || '/usr/bin/chromium';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    participant: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    video: { type: 'string' },
    audio: { type: 'string' },
    log: { type: 'string', default: 'warn' },
    'downscale-after': { type: 'string' },
    'e2ee-key': { type: 'string' },
    'video-codec': { type: 'string' },
    simulcast: { type: 'string' },
    'element-size': { type: 'string' },
    'video-only': { type: 'boolean', default: false },
  },
});

function fail(message) {
  process.stdout.write(`ERROR ${String(message).replace(/\s+/g, ' ')}\n`);
  process.exit(1);
}

const mode = positionals[0];
if (!['publish', 'subscribe', 'data'].includes(mode)) fail(`mode must be publish, subscribe or data, not ${mode}`);
if (!opts.url || !opts.token) fail('--url and --token are required');
if (mode === 'subscribe' && !opts.participant) fail('subscribe needs --participant');
const seconds = Number(opts.seconds);
if (!(seconds > 0 && seconds <= 120)) fail(`--seconds ${opts.seconds}: 0 < N <= 120`);
const downscaleAfter = opts['downscale-after'] === undefined ? null : Number(opts['downscale-after']);
if (downscaleAfter !== null && !(downscaleAfter >= 0 && downscaleAfter < seconds)) {
  fail(`--downscale-after ${opts['downscale-after']}: 0 <= S < --seconds`);
}
const videoCodec = opts['video-codec'];
if (videoCodec !== undefined && !['vp8', 'vp9', 'h264', 'av1'].includes(videoCodec)) {
  fail(`--video-codec ${videoCodec}: vp8, vp9, h264 or av1`);
}
if (opts.simulcast !== undefined && !['true', 'false'].includes(opts.simulcast)) {
  fail(`--simulcast ${opts.simulcast}: true or false`);
}
const simulcast = opts.simulcast === undefined ? undefined : opts.simulcast === 'true';
let elementSize;
if (opts['element-size'] !== undefined) {
  const m = /^(\d+)x(\d+)$/.exec(opts['element-size']);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) fail(`--element-size ${opts['element-size']}: WxH`);
  elementSize = [Number(m[1]), Number(m[2])];
}

// The page's three files, and nothing else, from 127.0.0.1 (a secure context: getUserMedia
// works there).
const files = {
  '/': ['page.html', 'text/html'],
  '/page.js': ['page.js', 'text/javascript'],
  '/data.js': ['data.js', 'text/javascript'],
  '/livekit-client.umd.js': ['node_modules/livekit-client/dist/livekit-client.umd.js', 'text/javascript'],
  '/livekit-client.e2ee.worker.mjs': ['node_modules/livekit-client/dist/livekit-client.e2ee.worker.mjs', 'text/javascript'],
};
const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;
  const file = files[path];
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(join(here, file[0]));
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(body);
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/?log=${encodeURIComponent(opts.log)}`;

const args = [
  // Root in CI: no sandbox. No GPU here. No traffic of Chromium's own.
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Media without a person: fake devices, permission prompts answered yes, autoplay allowed.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];
if (opts.video) args.push(`--use-file-for-fake-video-capture=${opts.video}`);
if (opts.audio) args.push(`--use-file-for-fake-audio-capture=${opts.audio}`);

let browser;
let failure = null;
const deadline = setTimeout(() => fail(`no result within ${seconds + 60} s`), (seconds + 60) * 1000);
try {
  // playwright-core gives the browser a fresh temporary profile (--user-data-dir) and removes
  // it at close.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  const page = await browser.newPage();
  page.on('console', (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.wavecast !== undefined, null, { timeout: 10000 });
  process.stderr.write(`[peer] ${await browser.version()} with livekit-client ${await page.evaluate(() => window.LivekitClient.version)}\n`);

  if (mode === 'data') {
    await page.exposeFunction('emit', (line) => process.stdout.write(`${line}\n`));
    await page.addScriptTag({ url: '/data.js' });
    const info = await page.evaluate((o) => window.wavecastData.join(o), {
      url: opts.url,
      token: opts.token,
      e2eeKey: opts['e2ee-key'],
    });
    process.stdout.write(`READY ${JSON.stringify(info)}\n`);
    clearTimeout(deadline);
    await serveCommands(page, seconds * 1000);
    await page.evaluate(() => window.wavecastData.leave()).catch(() => {});
  } else if (mode === 'publish') {
    const info = await page.evaluate((o) => window.wavecast.publish(o), {
      url: opts.url,
      token: opts.token,
      e2eeKey: opts['e2ee-key'],
      videoCodec,
      simulcast,
    });
    process.stdout.write(`READY ${JSON.stringify(info)}\n`);
    // The scaling runs while the publisher waits; its failure is kept (not an unhandled
    // rejection, which would end Node before it prints ERROR) and reported after the wait.
    let scaled = Promise.resolve(null);
    const timer = downscaleAfter === null ? null : setTimeout(() => {
      scaled = page.evaluate(() => window.wavecast.scaleCapture(0.5))
        .then((s) => {
          process.stdout.write(`SCALED ${JSON.stringify(s)}\n`);
          return null;
        })
        .catch((e) => e);
    }, downscaleAfter * 1000);
    await untilStopOr(seconds * 1000);
    clearTimeout(timer);
    const scaleError = await scaled;
    if (scaleError) throw new Error(`scaling the capture failed: ${scaleError?.message ?? scaleError}`);
    const stats = await page.evaluate(() => window.wavecast.publishStats());
    process.stdout.write(`RESULT ${JSON.stringify(stats)}\n`);
  } else {
    const result = await page.evaluate((o) => window.wavecast.subscribe(o), {
      url: opts.url,
      token: opts.token,
      participant: opts.participant,
      seconds,
      e2eeKey: opts['e2ee-key'],
      elementSize,
      videoOnly: opts['video-only'],
    });
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  }
  await page.evaluate(() => window.wavecast.leave()).catch(() => {});
} catch (e) {
  failure = e?.message ?? String(e);
} finally {
  clearTimeout(deadline);
  await browser?.close().catch(() => {});
  server.close();
}
if (failure !== null) fail(failure);
process.exit(0);

// Runs each stdin line as a data-plane command, one after another, answering `OK <line>` or
// `ERR <line> <why>`; resolves at the end of stdin or after `idleMs` without a line.
function serveCommands(page, idleMs) {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    let queue = Promise.resolve();
    let idle = setTimeout(() => rl.close(), idleMs);
    rl.on('line', (line) => {
      clearTimeout(idle);
      idle = setTimeout(() => rl.close(), idleMs);
      if (!line.trim()) return;
      queue = queue.then(async () => {
        try {
          await page.evaluate((l) => window.wavecastData.command(l), line);
          process.stdout.write(`OK ${line}\n`);
        } catch (e) {
          process.stdout.write(`ERR ${line} ${String(e?.message ?? e).replace(/\s+/g, ' ')}\n`);
        }
      });
    });
    rl.on('close', () => {
      clearTimeout(idle);
      queue.then(resolve);
    });
  });
}

// Resolves after `ms`, or earlier on a `stop` line or the end of stdin.
function untilStopOr(ms) {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    const done = () => {
      clearTimeout(timer);
      rl.close();
      resolve();
    };
    const timer = setTimeout(done, ms);
    rl.on('line', (l) => l.trim() === 'stop' && done());
    rl.on('close', done);
  });
}
