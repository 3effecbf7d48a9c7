// Conversation prompts: shown when a client has no talking points of their own. The rep edits
// the set in Settings (PATCH /me `prompts`; null puts the built-in five back).

// The same five as webapp/services/accounts.py DEFAULT_PROMPTS (used before /me has answered).
export const DEFAULT_PROMPTS = Object.freeze([
  "How is the product working for you?",
  "Any questions since we last spoke?",
  "I came across something that might help…",
  "How is your new project going?",
  "Just checking in — how are you?",
]);
export const MAX_PROMPTS = 20;
export const MAX_PROMPT_LENGTH = 200;

/** The rep's prompts, or the built-in ones when the rep's settings have none. */
export function repPrompts(me) {
  const list = me && Array.isArray(me.prompts) ? me.prompts.filter((p) => typeof p === "string" && p.trim()) : [];
  return list.length ? list : [...DEFAULT_PROMPTS];
}

/**
 * What to send for an edited list: the trimmed, non-empty prompts, or null (the built-in set)
 * when none is left or the list is the built-in one.
 */
export function promptsToSave(values) {
  const list = values.map((v) => String(v).trim()).filter(Boolean).slice(0, MAX_PROMPTS);
  if (!list.length) return null;
  const builtIn = list.length === DEFAULT_PROMPTS.length && list.every((p, i) => p === DEFAULT_PROMPTS[i]);
  return builtIn ? null : list;
}
