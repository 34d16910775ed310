// The browser peer's data-plane commands: livekit-client's data streams, RPC and attributes,
// driven line by line by peer.mjs (`data` mode) with the same line protocol as the Python
// peers of tests/python (stream_peer.py, rpc_peer.py): each command prints its lines through
// window.emit (exposed by peer.mjs), and peer.mjs then prints `OK <command>` or
// `ERR <command> <why>`.
//
// Receives: text streams on "lk.chat" (kept in arrival order) and byte streams on "files"
// (each emitted as `BYTES <sender> <name> <length> <sha256>` once read whole).
// Serves the RPC methods echo, fail (RpcError 4001 "nope" "data: <payload>"), boom (throws:
// 1500), big (16000 bytes), slow (sleeps the payload's seconds).
// Commands:
//   chat-report N             wait (60 s at most) for N chat messages; emits
//                             `CHAT <count> <senders> <sha256 of the messages joined by \n>`
//   send-chat N               send "browser 0" .. "browser N-1" on lk.chat, one after another
//   send-file SIZE SEED       send SIZE deterministic bytes as a file on "files"; emits
//                             `SENT <sha256>` first
//   set-attr KEY VALUE        set one of our attributes (waits for the server's answer)
//   attr-report WHO KEY       wait (30 s) until participant WHO has attribute KEY; emits
//                             `ATTR <value>`
//   call DEST METHOD PAYLOAD TIMEOUT [RTT]
//                             performRpc (seconds); emits `RESULT ok <payload>` (`<N bytes>`
//                             from 100 bytes on) or `RESULT err <code> <message>|<data>`
//   protocol-of WHO           wait (30 s) until WHO is in the room; emits
//                             `PROTOCOL <client protocol> <capabilities as JSON>` of WHO
//   bench DEST N              N sequential echo calls; emits `BENCH <p50 ms> <p95 ms>`
//   text-bench DEST N SIZE    N text streams of SIZE bytes to DEST, one after another, on
//                             topic "bench"; emits `TEXTBENCH <seconds>`
// PAYLOAD `-` is empty, `@N` is N bytes of "p".
'use strict';

(() => {
  const LK = window.LivekitClient;
  const emit = (line) => window.emit(line);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let room = null;
  const chats = [];
  const senders = new Set();

  async function sha256Hex(bytes) {
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  // Deterministic bytes: a 32-bit xorshift seeded with SEED (the receiver checks the sha256).
  function pattern(size, seed) {
    const out = new Uint8Array(size);
    let x = (seed * 2654435761) >>> 0 || 1;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5; x >>>= 0;
      out[i] = x & 0xff;
    }
    return out;
  }

  const payloadOf = (arg) => (arg === '-' ? '' : arg.startsWith('@') ? 'p'.repeat(Number(arg.slice(1))) : arg);

  // With `e2eeKey`: end-to-end encryption through livekit-client's `encryption` option, which
  // encrypts the data channel too (EncryptedPacket), with an ExternalE2EEKeyProvider.
  async function join({ url, token, e2eeKey }) {
    let keyProvider = null;
    if (e2eeKey === undefined) {
      room = new LK.Room();
    } else {
      keyProvider = new LK.ExternalE2EEKeyProvider();
      const worker = new Worker('/livekit-client.e2ee.worker.mjs', { type: 'module' });
      room = new LK.Room({ encryption: { keyProvider, worker } });
    }
    room.registerTextStreamHandler('lk.chat', async (reader, who) => {
      // The slot is taken in arrival order, whenever each reader finishes.
      const slot = chats.push(null) - 1;
      chats[slot] = await reader.readAll();
      senders.add(who.identity);
    });
    room.registerByteStreamHandler('files', async (reader, who) => {
      const parts = await reader.readAll();
      const size = parts.reduce((n, p) => n + p.byteLength, 0);
      const all = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.byteLength;
      }
      emit(`BYTES ${who.identity} ${reader.info.name} ${size} ${await sha256Hex(all)}`);
    });
    room.registerTextStreamHandler('bench', async (reader) => {
      await reader.readAll();
    });
    if (keyProvider) {
      await keyProvider.setKey(e2eeKey);
      await room.setE2EEEnabled(true);
    }
    // No ICE servers: see page.js.
    await room.connect(url, token, { rtcConfig: { iceServers: [] } });
    if (keyProvider) {
      // The worker turns encryption on a moment after the join: data sent before goes plain.
      await until(() => room.e2eeManager?.isDataChannelEncryptionEnabled, 10000, 'data channel encryption');
    }
    const lp = room.localParticipant;
    lp.registerRpcMethod('echo', async (d) => d.payload);
    lp.registerRpcMethod('fail', async (d) => {
      throw new LK.RpcError(4001, 'nope', `data: ${d.payload}`);
    });
    lp.registerRpcMethod('boom', async () => {
      throw new Error('boom');
    });
    lp.registerRpcMethod('big', async () => 'b'.repeat(16000));
    lp.registerRpcMethod('slow', async (d) => {
      await sleep(Number(d.payload) * 1000);
      return 'late';
    });
    return {
      sid: lp.sid,
      identity: lp.identity,
      client_protocol: LK.clientProtocol,
      data_encrypted: room.e2eeManager?.isDataChannelEncryptionEnabled ?? false,
    };
  }

  async function until(cond, ms, what) {
    const deadline = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

  async function command(line) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    const lp = room.localParticipant;
    switch (cmd) {
      case 'chat-report': {
        const n = Number(args[0]);
        await until(() => chats.filter((c) => c !== null).length >= n, 60000, `${n} chat messages`);
        const joined = new TextEncoder().encode(chats.join('\n'));
        emit(`CHAT ${chats.length} ${[...senders].sort().join(',')} ${await sha256Hex(joined)}`);
        return;
      }
      case 'send-chat': {
        for (let i = 0; i < Number(args[0]); i++) {
          await lp.sendText(`browser ${i}`, { topic: 'lk.chat' });
        }
        return;
      }
      case 'send-file': {
        const bytes = pattern(Number(args[0]), Number(args[1]));
        emit(`SENT ${await sha256Hex(bytes)}`);
        const file = new File([bytes], `seed${args[1]}.bin`, { type: 'application/octet-stream' });
        await lp.sendFile(file, { topic: 'files' });
        return;
      }
      case 'set-attr': {
        await lp.setAttributes({ [args[0]]: args.slice(1).join(' ') });
        return;
      }
      case 'attr-report': {
        const [who, key] = args;
        const value = () => room.remoteParticipants.get(who)?.attributes?.[key];
        await until(() => value() !== undefined, 30000, `${who}'s attribute ${key}`);
        emit(`ATTR ${value()}`);
        return;
      }
      case 'protocol-of': {
        await until(() => room.remoteParticipants.has(args[0]), 30000, `participant ${args[0]}`);
        const p = room.remoteParticipants.get(args[0]);
        emit(`PROTOCOL ${p?.clientProtocol} ${JSON.stringify(p?.capabilities ?? null)}`);
        return;
      }
      case 'call': {
        const [dest, method, payload, timeout, rtt] = args;
        try {
          const out = await lp.performRpc({
            destinationIdentity: dest,
            method,
            payload: payloadOf(payload),
            responseTimeout: Number(timeout) * 1000,
            ...(rtt === undefined ? {} : { maxRoundTripLatency: Number(rtt) * 1000 }),
          });
          emit(`RESULT ok ${out.length < 100 ? out : `<${out.length} bytes>`}`);
        } catch (e) {
          if (!(e instanceof LK.RpcError)) throw e;
          emit(`RESULT err ${e.code} ${e.message}|${e.data ?? ''}`);
        }
        return;
      }
      case 'bench': {
        const [dest, n] = args;
        const times = [];
        for (let i = 0; i < Number(n); i++) {
          const t0 = performance.now();
          await lp.performRpc({ destinationIdentity: dest, method: 'echo', payload: `ping ${i}` });
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        emit(`BENCH ${percentile(times, 0.5).toFixed(2)} ${percentile(times, 0.95).toFixed(2)}`);
        return;
      }
      case 'text-bench': {
        const [dest, n, size] = args;
        const text = 'x'.repeat(Number(size));
        const t0 = performance.now();
        for (let i = 0; i < Number(n); i++) {
          await lp.sendText(text, { topic: 'bench', destinationIdentities: [dest] });
        }
        emit(`TEXTBENCH ${((performance.now() - t0) / 1000).toFixed(4)}`);
        return;
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  }

  async function leave() {
    if (room) await room.disconnect();
    room = null;
  }

  window.wavecastData = { join, command, leave };
})();
