/**
 * Majority arithmetic over voters (etcd's `quorum/majority.go` in spirit): the committed index is
 * the highest index that a majority of voters have stored.
 */

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The largest index acknowledged by a majority of `matches` (one per voter); 0 with no voters. */
export function committedIndex(matches: number[]): number {
  if (matches.length === 0) return 0;
  matches.sort((a, b) => b - a);
  return matches[quorumSize(matches.length) - 1]!;
}

/** True when the granted voters form a majority of `voters`. */
export function hasQuorum(voterKeys: readonly string[], granted: readonly string[]): boolean {
  let n = 0;
  for (const k of voterKeys) if (granted.includes(k)) n++;
  return voterKeys.length > 0 && n >= quorumSize(voterKeys.length);
}
