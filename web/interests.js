// The matchmaking preferences the user picks: interests (as chips),
// "only people who share an interest", and a language. Remembered in
// localStorage and sent with each register. The pure helpers are tested in
// node; `InterestsField` is the small DOM part.
//
// The server checks and normalises everything again (wire/PROTOCOL.md,
// "Matchmaking preferences"); the page applies the same rules first so the
// chips show what the server will use.

/** Most tags, and longest tag in characters: as the server's limits. */
export const MAX_INTERESTS = 10;
export const MAX_INTEREST_CHARS = 32;

const STORAGE_KEY = 'rvc.prefs';

/** One tag in the server's normal form: trimmed, lowercased, NFC. */
export function normalizeTag(text) {
  return String(text).trim().toLowerCase().normalize('NFC');
}

/**
 * Add the tags typed in `text` (separated by commas) to `tags`: normalised,
 * without duplicates, too long or empty ones, at most MAX_INTERESTS.
 * Returns a new array.
 */
export function addTags(tags, text) {
  const out = [...tags];
  for (const part of String(text).split(',')) {
    const tag = normalizeTag(part);
    const chars = [...tag].length;
    if (chars < 1 || chars > MAX_INTEREST_CHARS || out.includes(tag)) continue;
    if (out.length >= MAX_INTERESTS) break;
    out.push(tag);
  }
  return out;
}

/** The primary language subtag of a browser language tag (`en-GB` → `en`), or ''. */
export function primaryLanguage(tag) {
  const primary = String(tag || '').split('-')[0].toLowerCase();
  return /^[a-z]{2,3}$/.test(primary) ? primary : '';
}

/** The fields of a register frame for `prefs` (nothing for what is not set). */
export function registerFields(prefs) {
  const fields = {};
  if (prefs.interests.length) fields.interests = prefs.interests;
  if (prefs.language) fields.language = prefs.language;
  if (prefs.strict && prefs.interests.length) fields.strict = true;
  return fields;
}

/** The remembered preferences, or the defaults (no interests, the browser's language). */
export function loadPrefs(storage, browserLanguage) {
  const defaults = { interests: [], strict: false, language: primaryLanguage(browserLanguage) };
  try {
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) || 'null');
    if (!saved || typeof saved !== 'object') return defaults;
    return {
      interests: Array.isArray(saved.interests) ? addTags([], saved.interests.join(',')) : [],
      strict: saved.strict === true,
      language: typeof saved.language === 'string' ? primaryLanguage(saved.language) : defaults.language,
    };
  } catch {
    return defaults;
  }
}

export function savePrefs(storage, prefs) {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(prefs));
  } catch {
    // Private browsing or a full storage: the preferences last this visit.
  }
}

/** "You both like: chess, jazz." or '' when nothing is shared. */
export function commonLine(tags) {
  return tags && tags.length ? `You both like: ${tags.join(', ')}.` : '';
}

// ---- the DOM ----------------------------------------------------------------

/** The interests input with its chips, the strict switch and the language choice. */
export class InterestsField {
  /**
   * @param {Document} doc
   * @param {Storage} storage
   * @param {string} browserLanguage e.g. navigator.language
   */
  constructor(doc, storage, browserLanguage) {
    const $ = (id) => doc.getElementById(id);
    this.doc = doc;
    this.storage = storage;
    this.el = { input: $('interest-input'), chips: $('interest-chips'), strict: $('strict'), language: $('language') };
    this.prefs = loadPrefs(storage, browserLanguage);
    const { input, strict, language } = this.el;
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ',') {
        ev.preventDefault();
        this.#take();
      } else if (ev.key === 'Backspace' && !input.value && this.prefs.interests.length) {
        this.#set({ interests: this.prefs.interests.slice(0, -1) });
      }
    });
    input.addEventListener('blur', () => this.#take());
    strict.addEventListener('change', () => this.#set({ strict: strict.checked }));
    language.addEventListener('change', () => this.#set({ language: language.value }));
    if (this.prefs.language && ![...language.options].some((o) => o.value === this.prefs.language)) {
      const option = doc.createElement('option');
      option.value = this.prefs.language;
      option.textContent = this.prefs.language;
      language.append(option);
    }
    this.#draw();
  }

  /** The preferences to register with, including what is still typed. */
  current() {
    this.#take();
    return this.prefs;
  }

  setDisabled(disabled) {
    for (const el of [this.el.input, this.el.strict, this.el.language]) el.disabled = disabled;
  }

  #take() {
    const text = this.el.input.value;
    if (!text.trim()) return;
    this.el.input.value = '';
    this.#set({ interests: addTags(this.prefs.interests, text) });
  }

  #set(change) {
    this.prefs = { ...this.prefs, ...change };
    savePrefs(this.storage, this.prefs);
    this.#draw();
  }

  #draw() {
    const { chips, strict, language } = this.el;
    chips.replaceChildren(
      ...this.prefs.interests.map((tag) => {
        const chip = this.doc.createElement('li');
        chip.className = 'chip';
        chip.dataset.testid = 'interest-chip';
        chip.textContent = tag;
        const remove = this.doc.createElement('button');
        remove.type = 'button';
        remove.className = 'chip__remove';
        remove.textContent = '×';
        remove.setAttribute('aria-label', `Remove ${tag}`);
        remove.addEventListener('click', () => this.#set({ interests: this.prefs.interests.filter((t) => t !== tag) }));
        chip.append(remove);
        return chip;
      }),
    );
    strict.checked = this.prefs.strict;
    language.value = this.prefs.language;
  }
}
