// Decoding a server frame, the same for the matcher and signaller sockets.

/** The frame as an event object (`{event: "...", ...}`), or null when it is
 *  not a JSON object with a string `event` (logged, then ignored). */
export function parseEvent(data, who) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    console.warn(`${who}: ignoring a frame that is not JSON`);
    return null;
  }
  return msg && typeof msg.event === 'string' ? msg : null;
}
