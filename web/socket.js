// What the matcher and signaller sockets handle the same way: decoding a
// server frame, and closing a socket we no longer listen to.

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

/** Close `ws` (if any) after detaching our handlers, so its close event
 *  cannot reach code that has moved on to another socket. */
export function closeQuietly(ws, code, reason) {
  if (!ws) return;
  ws.onclose = null;
  ws.onmessage = null;
  try {
    ws.close(code, reason);
  } catch {
    /* already closed */
  }
}
