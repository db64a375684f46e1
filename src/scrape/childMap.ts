/**
 * The map under `key` in a map of maps, made if missing. Maps nested by each part of an identity cost less
 * than one map keyed by the parts joined, when the parts are the same strings every time (their hashes are
 * kept in the strings) and the joined key would be a new string to hash.
 */
export function childMap<K, K2, V>(m: Map<K, Map<K2, V>>, key: K): Map<K2, V> {
  let child = m.get(key);
  if (child === undefined) m.set(key, (child = new Map()));
  return child;
}
