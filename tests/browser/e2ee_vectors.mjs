// Known-answer vectors for wavecast-e2ee, made by livekit-client's own E2EE worker.
//
// Run once (node 20+, from tests/browser after `npm ci`):
//   node e2ee_vectors.mjs > ../../crates/e2ee/tests/vectors.json
// The output is committed; the Rust tests read it and never run node.
//
// The worker (dist/livekit-client.e2ee.worker.mjs, the exact build the browser tests load) is
// imported into node with the few globals it expects from a Worker, fed frames through its
// 'encode' transform exactly as the browser's encoded-transform pipeline would, and its output
// recorded. Math.random is pinned to 0 while encrypting so the IV's send counter starts at 0
// (the IV is then SSRC ‖ RTP timestamp ‖ RTP timestamp − count). The key material comes from
// livekit-client's `createKeyMaterialFromString`-equivalent (PBKDF2 import of the passphrase)
// and from a raw buffer (HKDF import), as `ExternalE2EEKeyProvider.setKey` does.

const posted = [];
globalThis.self = globalThis;
globalThis.onmessage = null;
globalThis.postMessage = (m) => posted.push(m);

await import('./node_modules/livekit-client/dist/livekit-client.e2ee.worker.mjs');

const hex = (buf) => Buffer.from(new Uint8Array(buf)).toString('hex');
const tick = () => new Promise((r) => setTimeout(r, 20));

async function send(kind, data) {
  globalThis.onmessage({ data: { kind, data } });
  await tick();
}

async function material(kdf, secret) {
  if (kdf === 'PBKDF2') {
    return crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'PBKDF2' }, false, [
      'deriveBits',
      'deriveKey',
    ]);
  }
  return crypto.subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits', 'deriveKey']);
}

// One 'encode' (or 'decode') pipeline: push frames in, read what the worker wrote out.
async function transform(kind, identity, trackId, codec, frames) {
  const out = [];
  let push;
  const readableStream = new ReadableStream({
    start(c) {
      push = c;
    },
  });
  const writableStream = new WritableStream({
    write(f) {
      out.push(f);
    },
  });
  await send(kind, { participantIdentity: identity, readableStream, writableStream, trackId, codec, hasPacketTrailer: false });
  for (const f of frames) {
    push.enqueue(f);
    await tick();
  }
  push.close();
  await tick();
  return out;
}

function videoFrame(data, type, timestamp, ssrc) {
  return {
    data: new Uint8Array(data).buffer,
    type,
    timestamp,
    getMetadata: () => ({ synchronizationSource: ssrc, payloadType: 96, mimeType: 'video/VP8' }),
  };
}

function audioFrame(data, timestamp, ssrc) {
  return {
    data: new Uint8Array(data).buffer,
    timestamp,
    getMetadata: () => ({ synchronizationSource: ssrc, payloadType: 111, mimeType: 'audio/opus' }),
  };
}

const seq = (n, start) => Array.from({ length: n }, (_, i) => (start + i * 7) & 0xff);
// A VP8 key frame starts with a frame tag whose bit 0 is 0 (then the start code 9d 01 2a and the
// size); a delta frame's bit 0 is 1. The rest is arbitrary bytes here: only the layout matters.
const vp8Key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, ...seq(40, 3)];
const vp8Delta = [0x31, 0x05, 0x00, ...seq(25, 11)];
const opus = [0x78, ...seq(30, 100)];

const vectors = { source: 'livekit-client 2.23.0 dist/livekit-client.e2ee.worker.mjs', cases: [] };

async function run(name, kdf, secret, keyIndex) {
  posted.length = 0;
  await send('init', {
    keyProviderOptions: { sharedKey: true, ratchetSalt: 'LKFrameEncryptionKey', ratchetWindowSize: 0, failureTolerance: -1, keyringSize: 16, keySize: 128 },
    loglevel: 'warn',
  });
  await send('setKey', { isPublisher: true, key: await material(kdf, secret), keyIndex, updateCurrentKeyIndex: true });
  await send('enable', { participantIdentity: 'alice', enabled: true });
  const random = Math.random;
  Math.random = () => 0;
  const ssrc = 0x11223344;
  const video = await transform('encode', 'alice', `${name}-v`, 'vp8', [
    videoFrame(vp8Key, 'key', 90000, ssrc),
    videoFrame(vp8Delta, 'delta', 93000, ssrc),
  ]);
  const audio = await transform('encode', 'alice', `${name}-a`, undefined, [audioFrame(opus, 48000, ssrc + 1)]);
  Math.random = random;
  // A data packet payload through the worker's DataCryptor (its IV is random: recorded).
  const dataPlain = new TextEncoder().encode(`hello from ${name}, encrypted like a data packet`);
  await send('encryptDataRequest', { uuid: `${name}-data`, payload: dataPlain, participantIdentity: 'alice' });
  const dataOut = posted.find((m) => m.kind === 'encryptDataResponse');
  if (!dataOut) throw new Error('worker did not encrypt the data packet');
  const errors = posted.filter((m) => m.kind === 'error').map((m) => String(m.data.error));
  if (errors.length > 0 || video.length !== 2 || audio.length !== 1) {
    throw new Error(`worker did not encrypt: ${errors.join('; ')} (${video.length} video, ${audio.length} audio)`);
  }
  vectors.cases.push({
    name,
    kdf,
    secret: kdf === 'PBKDF2' ? secret : hex(secret),
    key_index: keyIndex,
    frames: [
      { kind: 'vp8', ssrc, rtp_timestamp: 90000, plain: hex(vp8Key), encrypted: hex(video[0].data) },
      { kind: 'vp8', ssrc, rtp_timestamp: 93000, plain: hex(vp8Delta), encrypted: hex(video[1].data) },
      { kind: 'opus', ssrc: ssrc + 1, rtp_timestamp: 48000, plain: hex(opus), encrypted: hex(audio[0].data) },
    ],
    data: {
      plain: hex(dataPlain),
      iv: hex(dataOut.data.iv),
      key_index: dataOut.data.keyIndex,
      encrypted: hex(dataOut.data.payload),
    },
  });
}

await run('passphrase', 'PBKDF2', 'wavecast e2ee known answer', 0);
await run('passphrase-index-3', 'PBKDF2', 'another passphrase', 3);
await run('raw-key', 'HKDF', Uint8Array.from({ length: 32 }, (_, i) => i * 5 + 1), 0);
process.stdout.write(JSON.stringify(vectors, null, 1) + '\n');
