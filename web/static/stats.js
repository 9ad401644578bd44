// The call page's counters, for people and for browser tests: window.callstream.stats,
// mirrored as JSON in #stats a few times a second, and by stats.publish() whenever a
// batch of counters changed together (so the two never disagree within a batch).

const PUBLISH_MS = 250;

export function createStats(el) {
  const stats = {
    state: 'connecting',
    framesReceived: 0, // binary frames off the socket
    framesDecoded: 0, // of those, parsed and decoded
    framesPlayed: 0, // consumed by the worklet
    framesSkipped: 0, // thrown away by the worklet: late or caught up
    framesDropped: 0, // dropped for this browser by the server (stats.dropped, summed)
    seqGaps: 0, // frames missing by sequence number
    underruns: 0,
    bufferMs: 0,
    networkMs: null, // server send to arrival here
    outputMs: 0, // AudioContext outputLatency + baseLatency
    latencyMs: null, // server to speaker: network + buffer + output, last measured while playing
    rttMs: null,
    clockOffsetMs: null,
    reconnects: 0,
    transcriptSegments: 0,
  };
  const publish = () => (el.textContent = JSON.stringify(stats));
  Object.defineProperty(stats, 'publish', { value: publish }); // not enumerable: not in the JSON
  window.callstream = Object.assign(window.callstream || {}, { stats });
  publish();
  setInterval(publish, PUBLISH_MS);
  return stats;
}
