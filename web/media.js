// Camera and microphone: ask for them, and turn the browser's reasons for
// refusing into sentences a person can act on.

/** Why the camera/microphone could not be had, in words and as a short code. */
export class MediaProblem extends Error {
  /**
   * @param {string} code  machine code: denied | no-device | busy | insecure | unsupported | failed
   * @param {string} message  what to tell the user
   */
  constructor(code, message) {
    super(message);
    this.name = 'MediaProblem';
    this.code = code;
  }
}

/**
 * Ask for camera and microphone. When one kind of device is missing the
 * other is used alone (a laptop without a microphone can still show video),
 * so only "neither" is a failure.
 *
 * @returns {Promise<{stream: MediaStream, note: string|null}>}
 * @throws {MediaProblem}
 */
export async function openCameraAndMic() {
  if (!window.isSecureContext) {
    throw new MediaProblem(
      'insecure',
      'This page needs a secure connection (https, or http://localhost) to use your camera.',
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MediaProblem('unsupported', 'This browser cannot use a camera here. Try a current Chrome, Firefox or Safari.');
  }
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ video: true, audio: true }), note: null };
  } catch (err) {
    if (!isMissingDevice(err)) throw explain(err);
  }
  // One of the two kinds is missing: fall back to whichever exists.
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    return { stream, note: 'No microphone found: the stranger will see you but not hear you.' };
  } catch (err) {
    if (!isMissingDevice(err)) throw explain(err);
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    return { stream, note: 'No camera found: the stranger will hear you but not see you.' };
  } catch (err) {
    throw explain(err);
  }
}

function isMissingDevice(err) {
  return err && (err.name === 'NotFoundError' || err.name === 'OverconstrainedError');
}

function explain(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return new MediaProblem(
        'denied',
        'Camera and microphone access was denied. Allow it for this site (the camera icon in the address bar) and press Start again.',
      );
    case 'NotFoundError':
    case 'OverconstrainedError':
      return new MediaProblem('no-device', 'No camera or microphone was found. Connect one and press Start again.');
    case 'NotReadableError':
    case 'AbortError':
      return new MediaProblem(
        'busy',
        'Your camera or microphone could not be started; another application may be using it. Close it and press Start again.',
      );
    default:
      return new MediaProblem('failed', `Could not start your camera: ${(err && err.message) || err}.`);
  }
}

/** Stop every track of a stream (turns the camera light off). */
export function stopStream(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}
