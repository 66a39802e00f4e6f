// A player for a job's outputs: <video> for MP4/WebM (and audio files), hls.js (vendored,
// loaded on demand) or the browser's own HLS for a playlist.

import { h, safeUrl } from "../dom.js";

const VIDEO = /\.(mp4|m4v|webm|mov)$/i;
const AUDIO = /\.(m4a|mp3|aac|ogg|opus|wav)$/i;
let hlsLoading = null;

function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/ui/vendor/hls.js/hls.min.js";
      script.onload = () => resolve(window.Hls);
      script.onerror = () => reject(new Error("could not load hls.js"));
      document.head.append(script);
    });
  }
  return hlsLoading;
}

/** The presigned URL of each output by its URL path, so playlist entries can be signed. */
function signedByPath(outputs) {
  const byPath = new Map();
  for (const o of outputs) {
    try {
      byPath.set(new URL(o.download_url).pathname, o.download_url);
    } catch {
      // not a URL: nothing to map
    }
  }
  return byPath;
}

function playHls(video, playlist, outputs) {
  const signed = signedByPath(outputs);
  loadHls().then((Hls) => {
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({
        enableWorker: false, // a worker would need worker-src blob: in the page's CSP
        // Segments and variant playlists are separate objects with their own presigned URLs.
        xhrSetup: (xhr, url) => {
          const path = new URL(url, location.href).pathname;
          if (signed.has(path)) xhr.open("GET", signed.get(path), true);
        },
      });
      hls.loadSource(playlist.download_url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = safeUrl(playlist.download_url);
    }
  }, () => {
    if (video.canPlayType("application/vnd.apple.mpegurl")) video.src = safeUrl(playlist.download_url);
  });
}

export function player(outputs) {
  const playlist = outputs.find((o) => /(^|\/)master\.m3u8$/i.test(o.key))
    || outputs.find((o) => /\.m3u8$/i.test(o.key));
  if (playlist) {
    const video = h("video", { id: "player", controls: true, preload: "metadata", playsinline: true });
    playHls(video, playlist, outputs);
    return video;
  }
  const file = outputs.find((o) => VIDEO.test(o.key));
  if (file) return h("video", { id: "player", controls: true, preload: "metadata", src: file.download_url });
  const audio = outputs.find((o) => AUDIO.test(o.key));
  if (audio) return h("audio", { id: "player", controls: true, preload: "metadata", src: audio.download_url });
  return null;
}
