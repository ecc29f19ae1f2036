// The text chat panel: a log that says who said what, and the input form.
// Text is always inserted as text, never as HTML.

export const MAX_CHAT_CHARS = 2000;

export class ChatPanel {
  /**
   * @param {object} els
   * @param {HTMLOListElement} els.log
   * @param {HTMLFormElement} els.form
   * @param {HTMLInputElement} els.input
   * @param {HTMLButtonElement} els.send
   * @param {(text: string) => boolean} onSend  returns whether the line went out
   */
  constructor({ log, form, input, send }, onSend) {
    this.log = log;
    this.input = input;
    this.send = send;
    this.input.maxLength = MAX_CHAT_CHARS;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = this.input.value.trim();
      if (!text || this.input.disabled) return;
      if (onSend(text)) {
        this.add('me', 'You', text);
        this.input.value = '';
      } else {
        this.system('Not sent: you are not connected to a stranger.');
      }
    });
    this.setEnabled(false);
  }

  /** Allow or forbid typing (only while in a room). */
  setEnabled(enabled) {
    const hadFocus = document.activeElement === this.input;
    this.enabled = enabled;
    this.input.disabled = !enabled;
    this.send.disabled = !enabled;
    this.input.placeholder = enabled ? 'Type a message…' : 'Chat opens with a stranger';
    if (enabled && hadFocus) this.input.focus();
  }

  clear() {
    this.log.replaceChildren();
  }

  /**
   * @param {'me'|'peer'|'system'} from
   * @param {string} who    label shown before the text
   * @param {string} text
   * @param {number} [timestamp]  Unix seconds
   */
  add(from, who, text, timestamp) {
    const li = document.createElement('li');
    li.className = `msg msg--${from}`;
    li.dataset.from = from;
    const whoEl = document.createElement('span');
    whoEl.className = 'msg__who';
    whoEl.textContent = who;
    const textEl = document.createElement('span');
    textEl.className = 'msg__text';
    textEl.textContent = text;
    li.append(whoEl, textEl);
    const when = timestamp ? new Date(timestamp * 1000) : new Date();
    if (!Number.isNaN(when.getTime())) li.title = when.toLocaleTimeString();
    this.#append(li);
  }

  /** A line from the page itself (stranger joined, left, …). */
  system(text) {
    const li = document.createElement('li');
    li.className = 'msg msg--system';
    li.dataset.from = 'system';
    li.textContent = text;
    this.#append(li);
  }

  #append(li) {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.log.append(li);
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }
}
