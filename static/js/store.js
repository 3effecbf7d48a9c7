// The local copy of the rep's data, in IndexedDB, in the style of idb-keyval: one tiny promise
// wrapper per operation, no library. Stores: kv (settings, token, cursors), clients, callbacks,
// touches (each keyed by id), and outbox (one record per change, keyed by an increasing seq).

const DB_NAME = "touchbase";
const DB_VERSION = 1;
export const STORES = ["kv", "clients", "callbacks", "touches", "outbox"];

let dbPromise = null;

function promisify(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function open() {
  if (!dbPromise) {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("kv");
      db.createObjectStore("clients", { keyPath: "id" });
      db.createObjectStore("callbacks", { keyPath: "id" });
      db.createObjectStore("touches", { keyPath: "id" });
      db.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
    };
    dbPromise = promisify(request);
  }
  return dbPromise;
}

/** Run `fn(store)` in one transaction on `name`; resolves when the transaction commits. */
async function withStore(name, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(name, mode, { durability: "strict" });
    let result;
    Promise.resolve(fn(tx.objectStore(name))).then((value) => { result = value; }, reject);
    tx.oncomplete = () => resolve(result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

export function get(name, key) {
  return withStore(name, "readonly", (s) => promisify(s.get(key)));
}

export function all(name) {
  return withStore(name, "readonly", (s) => promisify(s.getAll()));
}

/** Put one record (or, for kv, `value` under `key`); resolves to its key once committed. */
export function put(name, value, key) {
  return withStore(name, "readwrite", (s) => promisify(key === undefined ? s.put(value) : s.put(value, key)));
}

export function putMany(name, values) {
  return withStore(name, "readwrite", (s) => { for (const v of values) s.put(v); });
}

export function del(name, key) {
  return withStore(name, "readwrite", (s) => promisify(s.delete(key)));
}

export function clear(name) {
  return withStore(name, "readwrite", (s) => promisify(s.clear()));
}

export const kv = {
  get: (key) => get("kv", key),
  set: (key, value) => put("kv", value, key),
  del: (key) => del("kv", key),
};
