// The browser peer's page logic: livekit-client (window.LivekitClient, the UMD build) with its
// default settings, publishing Chromium's fake camera and microphone or subscribing to one
// participant and measuring what arrives. peer.mjs calls these functions with page.evaluate.
'use strict';

(() => {
  const LK = window.LivekitClient;
  LK.setLogLevel(new URLSearchParams(location.search).get('log') || 'warn');

  // What the page measured; a caller may read it at any time (wavecast.state()).
  const state = { events: [] };
  let room = null;

  const now = () => performance.now();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const note = (what) => {
    state.events.push({ at_ms: Math.round(now()), what });
    console.log(`[wavecast] ${what}`);
  };

  // The room livekit-client makes by default, with adaptive stream and dynacast on (both off
  // in its defaults; the official apps turn them on). Publish options are left at their
  // defaults: simulcast, VP8 with a backup codec, RED and DTX for audio, capture at 720p with
  // echo cancellation, noise suppression and auto gain.
  //
  // With `e2eeKey`: end-to-end encryption as livekit-client's docs set it up — an
  // ExternalE2EEKeyProvider with the passphrase and its e2ee worker; decryption errors are
  // counted in `state.e2ee_errors`.
  //
  // `publishDefaults` (publish only): livekit-client's `publishDefaults` room option, e.g.
  // `{ videoCodec: 'h264', simulcast: false }`; its own defaults for what is not given.
  function newRoom(e2eeKey, publishDefaults) {
    const options = { adaptiveStream: true, dynacast: true };
    if (publishDefaults && Object.keys(publishDefaults).length) options.publishDefaults = publishDefaults;
    if (e2eeKey !== undefined) {
      const keyProvider = new LK.ExternalE2EEKeyProvider();
      const worker = new Worker('/livekit-client.e2ee.worker.mjs', { type: 'module' });
      options.e2ee = { keyProvider, worker };
      state.e2ee = { keyProvider };
    }
    const r = new LK.Room(options);
    if (e2eeKey !== undefined) {
      state.e2ee_errors = 0;
      r.on(LK.RoomEvent.EncryptionError, (e) => {
        state.e2ee_errors++;
        if (state.e2ee_errors <= 5) note(`encryption error: ${e?.message ?? e}`);
      });
    }
    r.on(LK.RoomEvent.ConnectionStateChanged, (s) => note(`connection ${s}`));
    r.on(LK.RoomEvent.Disconnected, (reason) => note(`disconnected (reason ${reason})`));
    r.on(LK.RoomEvent.MediaDevicesError, (e) => note(`media devices error: ${e}`));
    r.on(LK.RoomEvent.ParticipantConnected, (p) => note(`participant ${p.identity} joined`));
    r.on(LK.RoomEvent.TrackSubscriptionFailed, (sid, p, e) =>
      note(`subscription to ${sid} of ${p?.identity} failed: ${e}`));
    return r;
  }

  // Connect options: no ICE servers. livekit-server hands out public STUN servers even in dev
  // mode; the test's network namespace has no route to them, and the page needs none (the
  // server's candidates are on the namespace's own address).
  async function connect(url, token, e2eeKey, publishDefaults) {
    room = newRoom(e2eeKey, publishDefaults);
    if (e2eeKey !== undefined) {
      await state.e2ee.keyProvider.setKey(e2eeKey);
      await room.setE2EEEnabled(true);
      note('end-to-end encryption on');
    }
    const started = now();
    await room.connect(url, token, { rtcConfig: { iceServers: [] } });
    note(`connected as ${room.localParticipant.identity} (${room.localParticipant.sid}) in ${Math.round(now() - started)} ms`);
    return room;
  }

  // Publish the fake camera and microphone with livekit-client's default settings, or with
  // `videoCodec` ('vp8', 'vp9', 'h264', 'av1') and `simulcast` (true/false) as its
  // `publishDefaults` when given. The answer names the codec each RTP stream of the camera
  // actually encodes with (`video_layers`, from the sender's statistics: outbound-rtp codecId
  // → codec mimeType), waiting up to 5 s for every stream to have one.
  async function publish({ url, token, e2eeKey, videoCodec, simulcast }) {
    const defaults = {};
    if (videoCodec !== undefined) defaults.videoCodec = videoCodec;
    if (simulcast !== undefined) defaults.simulcast = simulcast;
    await connect(url, token, e2eeKey, defaults);
    const started = now();
    await room.localParticipant.enableCameraAndMicrophone();
    const pubs = [...room.localParticipant.trackPublications.values()];
    const tracks = pubs.map((p) => ({
      kind: p.kind,
      source: p.source,
      sid: p.trackSid,
      mime: p.mimeType,
      simulcasted: p.simulcasted,
      settings: p.track?.mediaStreamTrack.getSettings(),
    }));
    note(`published ${tracks.map((t) => t.kind).join(' + ')} in ${Math.round(now() - started)} ms`);
    const camera = room.localParticipant.getTrackPublication(LK.Track.Source.Camera);
    if (camera?.track?.sender) watchLayers(camera.track.sender);
    const videoLayers = await senderCodecs(camera?.track?.sender, 5000);
    note(`camera encodes ${videoLayers.map((l) => `${l.rid ?? '-'}:${l.codec}`).join(' ')}`);
    return {
      identity: room.localParticipant.identity,
      sid: room.localParticipant.sid,
      published_at_unix_ms: Date.now(),
      requested: defaults,
      tracks,
      video_layers: videoLayers,
    };
  }

  // The codec mimeType ('video/H264', …) of a stats entry, through its codecId.
  const codecOf = (report, s) => (s.codecId ? report.get(s.codecId)?.mimeType ?? null : null);

  // The camera sender's RTP streams with their codecs (the negotiated codec of each stream: what
  // its encoder uses), once every stream has one (or after `timeoutMs`). Frames need not have
  // been encoded yet (Chromium starts its top layer only once its bandwidth estimate allows),
  // so sizes and `encoder` may still be null: RESULT has them.
  // [{ rid, codec, width, height, frames_encoded, encoder, scalability_mode }].
  async function senderCodecs(sender, timeoutMs) {
    if (!sender) return [];
    const until = now() + timeoutMs;
    let layers = [];
    for (;;) {
      const report = await sender.getStats();
      layers = [];
      report.forEach((s) => {
        if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
        layers.push({
          rid: s.rid ?? null,
          codec: codecOf(report, s),
          width: s.frameWidth ?? null,
          height: s.frameHeight ?? null,
          frames_encoded: s.framesEncoded ?? 0,
          encoder: s.encoderImplementation ?? null,
          scalability_mode: s.scalabilityMode ?? null,
        });
      });
      const done = layers.length && layers.every((l) => l.codec);
      if (done || now() > until) return layers;
      await sleep(200);
    }
  }

  // The camera's simulcast layers over time, read from the sender's statistics every
  // LAYER_SAMPLE_MS: an entry whenever a layer starts or stops sending (frames encoded and
  // packets at MIN_PACKETS_PER_S since the last sample, or not), changes size, or names another
  // quality limitation. Tests compare a subscriber's picture sizes with it: the server can only
  // forward what is sent.
  const LAYER_SAMPLE_MS = 200;
  // Below this packet rate a layer counts as stopped: livekit-server's stream tracker stops
  // forwarding an upper layer after a 500 ms cycle with fewer than 5 packets.
  const MIN_PACKETS_PER_S = 10;
  let layerTimer = null;
  function watchLayers(sender) {
    const last = new Map();
    state.layers = [];
    clearInterval(layerTimer);
    layerTimer = setInterval(async () => {
      let report;
      try {
        report = await sender.getStats();
      } catch {
        return;
      }
      const at = Date.now();
      report.forEach((s) => {
        if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
        const rid = s.rid ?? '';
        const frames = s.framesEncoded ?? 0;
        const packets = s.packetsSent ?? 0;
        const prev = last.get(rid);
        // Samples can bunch up on a busy machine: a rate over a few ms means nothing.
        if (prev !== undefined && at - prev.at < LAYER_SAMPLE_MS / 2) return;
        const rate = prev === undefined ? 0 : ((packets - prev.packets) * 1000) / Math.max(at - prev.at, 1);
        const entry = {
          rid,
          sending: prev !== undefined && frames > prev.frames && rate >= MIN_PACKETS_PER_S,
          width: s.frameWidth ?? null,
          height: s.frameHeight ?? null,
          limitation: s.qualityLimitationReason ?? null,
        };
        const key = JSON.stringify(entry);
        // The first sample only sets the baseline (no frame count to compare with yet).
        if (prev !== undefined && prev.key !== key) state.layers.push({ at_unix_ms: at, ...entry });
        last.set(rid, { frames, packets, at, key });
      });
    }, LAYER_SAMPLE_MS);
  }

  // Scale the camera's capture by `factor` (applyConstraints), as libwebrtc's own adaptation
  // does under CPU or bandwidth pressure; every simulcast layer follows.
  async function scaleCapture(factor) {
    const pub = room?.localParticipant.getTrackPublication(LK.Track.Source.Camera);
    const track = pub?.track?.mediaStreamTrack;
    if (!track) throw new Error('no camera track to scale');
    const before = track.getSettings();
    const [width, height] = [Math.round(before.width * factor), Math.round(before.height * factor)];
    await track.applyConstraints({ width: { exact: width }, height: { exact: height } });
    const after = track.getSettings();
    note(`capture scaled from ${before.width}x${before.height} to ${after.width}x${after.height}`);
    return { width: after.width, height: after.height, at_unix_ms: Date.now() };
  }

  // What the publisher's encoders did: one entry per RTP stream (a simulcast layer each).
  async function publishStats() {
    if (!room) throw new Error('not connected');
    const out = { video_layers: [], audio: [] };
    for (const pub of room.localParticipant.trackPublications.values()) {
      const sender = pub.track?.sender;
      if (!sender) continue;
      const report = await sender.getStats();
      const params = sender.getParameters();
      report.forEach((s) => {
        if (s.type !== 'outbound-rtp') return;
        if (s.kind === 'video') {
          const enc = params.encodings?.find((e) => (e.rid ?? '') === (s.rid ?? ''));
          out.video_layers.push({
            rid: s.rid ?? null,
            active: enc ? enc.active !== false : null,
            scale_down_by: enc?.scaleResolutionDownBy ?? null,
            max_bitrate: enc?.maxBitrate ?? null,
            width: s.frameWidth ?? null,
            height: s.frameHeight ?? null,
            frames_encoded: s.framesEncoded ?? 0,
            frames_sent: s.framesSent ?? 0,
            bytes_sent: s.bytesSent ?? 0,
            fps: s.framesPerSecond ?? null,
            quality_limitation: s.qualityLimitationReason ?? null,
            resolution_changes: s.qualityLimitationResolutionChanges ?? null,
            encoder: s.encoderImplementation ?? null,
            codec: codecOf(report, s),
            scalability_mode: s.scalabilityMode ?? null,
          });
        } else if (s.kind === 'audio') {
          out.audio.push({
            packets_sent: s.packetsSent ?? 0,
            bytes_sent: s.bytesSent ?? 0,
            codec: codecOf(report, s),
          });
        }
      });
    }
    out.e2ee = { enabled: room.isE2EEEnabled, errors: state.e2ee_errors ?? 0 };
    out.events = state.events;
    out.layer_timeline = state.layers ?? [];
    out.layer_sample_ms = LAYER_SAMPLE_MS;
    return out;
  }

  // Wait for `participant`'s camera and microphone tracks (subscribed by default); only the
  // video when `videoOnly`.
  function waitForTracks(participant, timeoutMs, videoOnly) {
    return new Promise((resolve, reject) => {
      const got = {};
      const wanted = videoOnly ? 'video' : 'video and audio';
      const check = () => {
        if (got.video && (videoOnly || got.audio)) {
          clearTimeout(timer);
          resolve(got);
        }
      };
      const timer = setTimeout(
        () => reject(new Error(`no ${wanted} from ${participant} within ${timeoutMs} ms (got ${Object.keys(got).join(', ') || 'nothing'})`)),
        timeoutMs,
      );
      const take = (track, p) => {
        if (p.identity !== participant || got[track.kind]) return;
        if (videoOnly && track.kind !== 'video') return;
        note(`subscribed to ${track.kind} ${track.sid} of ${p.identity}`);
        got[track.kind] = track;
        check();
      };
      room.on(LK.RoomEvent.TrackSubscribed, (track, _pub, p) => take(track, p));
      for (const p of room.remoteParticipants.values()) {
        for (const pub of p.trackPublications.values()) {
          if (pub.track) take(pub.track, p);
        }
      }
    });
  }

  // The peak of an AnalyserNode's spectrum, refined by a parabola through the three bins
  // around it (in dB): { hz, db }.
  function spectrumPeak(analyser, bins) {
    analyser.getFloatFrequencyData(bins);
    let k = 1;
    for (let i = 2; i < bins.length - 1; i++) if (bins[i] > bins[k]) k = i;
    const [a, b, c] = [bins[k - 1], bins[k], bins[k + 1]];
    const denom = a - 2 * b + c;
    const shift = denom !== 0 && Number.isFinite(denom) ? (0.5 * (a - c)) / denom : 0;
    const binHz = analyser.context.sampleRate / analyser.fftSize;
    return { hz: (k + shift) * binHz, db: b };
  }

  // wavecast's frame stamp (crates/media/src/stamp.rs): a 48 × 2 grid of black and white cells
  // across the top of the picture, `width / 48` pixels square, carrying 96 bits — frame number
  // (32), capture time in µs since the UNIX epoch (56), CRC-8 (8) — most significant bit first.
  // Reads the central half of each cell of an RGBA band, thresholds at mid-grey, checks the
  // CRC. Returns { frame, captured_ms } or null.
  const STAMP_COLUMNS = 48;
  const STAMP_ROWS = 2;
  const cellEdge = (i, width) => Math.floor((i * width) / STAMP_COLUMNS);
  function crc8(bytes) {
    let crc = 0;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc ^ 0x55;
  }
  function readStamp(rgba, width) {
    const bytes = new Uint8Array(12);
    for (let row = 0; row < STAMP_ROWS; row++) {
      const [y0, y1] = [cellEdge(row, width), cellEdge(row + 1, width)];
      const [cy0, cy1] = [y0 + Math.floor((y1 - y0) / 4), Math.max(y1 - Math.floor((y1 - y0) / 4), y0 + 1)];
      for (let col = 0; col < STAMP_COLUMNS; col++) {
        const [x0, x1] = [cellEdge(col, width), cellEdge(col + 1, width)];
        const [cx0, cx1] = [x0 + Math.floor((x1 - x0) / 4), Math.max(x1 - Math.floor((x1 - x0) / 4), x0 + 1)];
        let sum = 0;
        let n = 0;
        for (let y = cy0; y < cy1; y++) {
          for (let x = cx0; x < cx1; x++) {
            const i = (y * width + x) * 4;
            sum += (rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3;
            n++;
          }
        }
        if (sum / Math.max(n, 1) >= 126) {
          const bit = row * STAMP_COLUMNS + col;
          bytes[bit >> 3] |= 0x80 >> (bit & 7);
        }
      }
    }
    if (bytes[11] !== crc8(bytes.subarray(0, 11))) return null;
    const frame = ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
    let us = 0;
    for (let i = 4; i < 11; i++) us = us * 256 + bytes[i];
    return { frame, captured_ms: us / 1000 };
  }

  const percentile = (xs, q) => {
    if (xs.length === 0) return null;
    const s = [...xs].sort((x, y) => x - y);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
  };

  const median = (xs) => {
    if (xs.length === 0) return null;
    const s = [...xs].sort((x, y) => x - y);
    return s[Math.floor(s.length / 2)];
  };

  // Subscribe to `participant`, play its video in a <video> element and its audio through
  // WebAudio, and measure for `seconds`: frames presented (requestVideoFrameCallback), the
  // picture size (videoWidth/videoHeight), and the tone's frequency (AnalyserNode FFT peak).
  // `elementSize` ([width, height], CSS pixels; 640×360 when not given) sizes the <video>
  // element: adaptive stream asks the server for the layer that fits it. `videoOnly`: the
  // participant's video alone (no audio is awaited or measured). The receiver's statistics are
  // sampled every second: the codec and the decoded frame size over time (`received`).
  async function subscribe({ url, token, participant, seconds, e2eeKey, elementSize, videoOnly }) {
    const joinStarted = now();
    await connect(url, token, e2eeKey);
    const { video: videoTrack, audio: audioTrack } = await waitForTracks(participant, 20000, videoOnly);
    const [elementWidth, elementHeight] = elementSize ?? [640, 360];

    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    // A visible element (of the published size by default): adaptive stream asks the server
    // for the layer that fits the element.
    video.style.width = `${elementWidth}px`;
    video.style.height = `${elementHeight}px`;
    video.style.display = 'block';
    document.getElementById('media').append(video);
    videoTrack.attach(video);

    // Chromium plays remote WebRTC audio into WebAudio only while a media element plays the
    // track too (the element livekit-client attaches).
    let audioEl = null;
    let ctx = null;
    let analyser = null;
    let bins = null;
    if (audioTrack) {
      audioEl = audioTrack.attach();
      document.getElementById('media').append(audioEl);
      ctx = new AudioContext();
      await ctx.resume();
      const source = ctx.createMediaStreamSource(new MediaStream([audioTrack.mediaStreamTrack]));
      analyser = ctx.createAnalyser();
      analyser.fftSize = 16384;
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
      bins = new Float32Array(analyser.frequencyBinCount);
    }

    // The receiver's view, once a second from subscribing on: codec and decoded frame size.
    const received = [];
    const sampleReceiver = async () => {
      const report = await videoTrack.receiver?.getStats().catch(() => null);
      report?.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        received.push({
          at_ms: Math.round(now() - joinStarted),
          codec: codecOf(report, s),
          width: s.frameWidth ?? null,
          height: s.frameHeight ?? null,
          frames_decoded: s.framesDecoded ?? 0,
        });
      });
    };
    const receiverTimer = setInterval(sampleReceiver, 1000);

    // Frames: requestVideoFrameCallback's presentedFrames counts every frame composited, even
    // when two arrive between callbacks. Each frame's stamp band is drawn into a canvas and
    // read: frame numbers (what share of the sender's frames was shown) and capture times
    // (same machine, same clock: capture-to-presentation age).
    const frames = { first: null, last: null, first_at_ms: null, sizes: [] };
    const stamps = { measuring: false, read: 0, unread: 0, numbers: new Set(), ages_ms: [] };
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const onFrame = (_t, meta) => {
      if (frames.first === null) {
        frames.first = meta.presentedFrames;
        frames.first_at_ms = now();
        note(`first frame ${meta.width}x${meta.height} ${Math.round(now() - joinStarted)} ms after joining`);
      }
      frames.last = meta.presentedFrames;
      const size = frames.sizes[frames.sizes.length - 1];
      if (!size || size.width !== meta.width || size.height !== meta.height) {
        frames.sizes.push({ width: meta.width, height: meta.height, at_frame: meta.presentedFrames - frames.first });
      }
      if (stamps.measuring) {
        const band = cellEdge(STAMP_ROWS, meta.width);
        if (canvas.width !== meta.width || canvas.height !== band) [canvas.width, canvas.height] = [meta.width, band];
        g.drawImage(video, 0, 0, meta.width, band, 0, 0, meta.width, band);
        const s = readStamp(g.getImageData(0, 0, meta.width, band).data, meta.width);
        if (s) {
          stamps.read++;
          stamps.numbers.add(s.frame);
          stamps.ages_ms.push(Date.now() - s.captured_ms);
        } else {
          stamps.unread++;
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);

    // Wait for the first frame (bounded), then measure for `seconds`.
    const firstDeadline = now() + 20000;
    while (frames.first === null && now() < firstDeadline) await sleep(50);
    if (frames.first === null) throw new Error('no video frame was presented within 20 s');
    const startFrames = frames.last;
    const started = now();
    stamps.measuring = true;
    const peaks = [];
    while (now() - started < seconds * 1000) {
      await sleep(250);
      if (!analyser) continue;
      const p = spectrumPeak(analyser, bins);
      if (p.db > -90) peaks.push(p);
    }
    clearInterval(receiverTimer);
    await sampleReceiver();
    stamps.measuring = false;
    const elapsed = (now() - started) / 1000;
    const presented = frames.last - startFrames;
    const numbers = [...stamps.numbers];
    const span = numbers.length ? Math.max(...numbers) - Math.min(...numbers) + 1 : 0;

    const inboundAudio = {};
    const audioReport = await audioTrack?.receiver?.getStats();
    audioReport?.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        Object.assign(inboundAudio, {
          packets_received: s.packetsReceived ?? null,
          samples_received: s.totalSamplesReceived ?? null,
          concealed_samples: s.concealedSamples ?? null,
          codec: audioReport.get(s.codecId)?.mimeType ?? null,
        });
      }
    });

    const inbound = {};
    const report = await videoTrack.receiver?.getStats();
    const sized = received.filter((r) => r.width && r.height);
    const size = (r) => (r ? { width: r.width, height: r.height, at_ms: r.at_ms } : null);
    const largest = sized.reduce((m, r) => (!m || r.width * r.height > m.width * m.height ? r : m), null);
    report?.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        Object.assign(inbound, {
          frames_received: s.framesReceived ?? null,
          frames_decoded: s.framesDecoded ?? null,
          frames_dropped: s.framesDropped ?? null,
          frame_width: s.frameWidth ?? null,
          frame_height: s.frameHeight ?? null,
          decoder: s.decoderImplementation ?? null,
          codec: codecOf(report, s),
        });
      }
    });

    return {
      join_to_first_frame_ms: Math.round(frames.first_at_ms - joinStarted),
      seconds: elapsed,
      frames: presented,
      fps: presented / elapsed,
      video_width: video.videoWidth,
      video_height: video.videoHeight,
      sizes: frames.sizes,
      element: { width: elementWidth, height: elementHeight },
      inbound_video: inbound,
      inbound_audio: inboundAudio,
      // The receiver's statistics each second: the codecs seen (in order) and the decoded frame
      // size (first, last, largest by area; each sample in `samples`).
      received: {
        codecs: [...new Set(received.map((r) => r.codec).filter(Boolean))],
        first: size(sized[0]),
        last: size(sized[sized.length - 1]),
        max: size(largest),
        samples: received,
      },
      stamps: {
        read: stamps.read,
        unread: stamps.unread,
        distinct: numbers.length,
        first: numbers.length ? Math.min(...numbers) : null,
        last: numbers.length ? Math.max(...numbers) : null,
        // Of the frames the sender numbered in the window: those whose stamp a callback read,
        // and those presented (callbacks can coalesce frames; presentedFrames counts them all).
        read_pct: span ? (100 * numbers.length) / span : null,
        presented_pct: span ? (100 * presented) / span : null,
        age_p50_ms: percentile(stamps.ages_ms, 0.5),
        age_p95_ms: percentile(stamps.ages_ms, 0.95),
      },
      audio: audioTrack ? {
        sample_rate: ctx.sampleRate,
        fft_size: analyser.fftSize,
        snapshots: peaks.length,
        tone_hz: median(peaks.map((p) => p.hz)),
        peak_db: median(peaks.map((p) => p.db)),
        element_paused: audioEl.paused,
      } : null,
      e2ee: { enabled: room.isE2EEEnabled, errors: state.e2ee_errors ?? 0 },
      events: state.events,
    };
  }

  async function leave() {
    clearInterval(layerTimer);
    if (room) await room.disconnect();
    room = null;
  }

  window.wavecast = { publish, publishStats, scaleCapture, subscribe, leave, state: () => state };
})();
