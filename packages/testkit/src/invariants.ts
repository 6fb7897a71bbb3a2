import type { LogEntry } from '@otra/protocol';
import { type Role, type ServerState, termAt } from '@otra/raft-core';

export class SafetyViolation extends Error {
  constructor(
    readonly property: 'election_safety' | 'log_matching' | 'leader_completeness' | 'state_machine_safety',
    message: string,
  ) {
    super(`${property}: ${message}`);
  }
}

interface NodeTrack {
  entries: LogEntry[] | null;
  checkedLength: number;
  snapshotIndex: number;
  commitIndex: number;
  lastApplied: number;
  wasLeaderTerm: number;
}

/**
 * The four safety properties of Raft (Figure 3), checked incrementally after every step:
 * - Election Safety: at most one leader per term;
 * - Log Matching: two logs with an entry of the same index and term agree on it and on all
 *   before it (checked as: same (index, term) => same entry and same previous term);
 * - Leader Completeness: a leader's log holds every entry committed before it was elected;
 * - State Machine Safety: no two servers apply different entries at one index, and servers at the
 *   same applied index hold the same machine state.
 */
export class SafetyChecker {
  private readonly leaders = new Map<number, string>();
  /** First seen copy of each (index, term), and the server it was first seen on. */
  private readonly entries = new Map<string, { prevTerm: number; entry: LogEntry; by: string }>();
  private readonly committed = new Map<number, number>();
  private readonly applied = new Map<number, number>();
  private maxCommitted = 0;
  private readonly stateAt = new Map<number, string>();
  private readonly nodes = new Map<string, NodeTrack>();
  /** Machine states are compared through this digest (JSON by default). */
  constructor(private readonly digest: (machineState: unknown) => string = (s) => JSON.stringify(s)) {}

  /**
   * The node restarted: its volatile state is gone. `durableTerm` is the term it recovered. A term
   * it had entered but not made durable left no trace outside it: `meta.persist` is a barrier, so
   * nothing it did in that term (sending, appending, replying) ran. What it was seen holding in such
   * a term, leadership (a lone voter elects itself in one step) and the entries it appended as that
   * leader, is forgotten, so that the leader another server may legitimately become in that term is
   * not taken for a second one.
   */
  restarted(key: string, durableTerm?: number): void {
    this.nodes.delete(key);
    if (durableTerm === undefined) return;
    for (const [term, leader] of this.leaders)
      if (leader === key && term > durableTerm) this.leaders.delete(term);
    for (const [id, known] of this.entries)
      if (known.by === key && known.entry.term > durableTerm) this.entries.delete(id);
  }

  /** The highest index any server has committed. */
  get committedIndex(): number {
    return this.maxCommitted;
  }

  observe(key: string, role: Role, s: ServerState): void {
    let t = this.nodes.get(key);
    if (t === undefined) {
      t = {
        entries: null,
        checkedLength: 0,
        snapshotIndex: s.log.snapshotIndex,
        commitIndex: s.commitIndex,
        lastApplied: s.lastApplied,
        wasLeaderTerm: 0,
      };
      this.nodes.set(key, t);
    }
    // Election safety
    if (role === 'leader') {
      const other = this.leaders.get(s.currentTerm);
      if (other !== undefined && other !== key) {
        throw new SafetyViolation(
          'election_safety',
          `${other} and ${key} both leaders in term ${s.currentTerm}`,
        );
      }
      if (other === undefined) this.leaders.set(s.currentTerm, key);
    }
    // Log matching, on entries not yet checked in this version of the log
    const log = s.log;
    let from = 0;
    if (t.entries === log.entries && t.snapshotIndex === log.snapshotIndex)
      from = Math.min(t.checkedLength, log.length);
    for (let i = from; i < log.length; i++) {
      const e = log.entries[i]!;
      if (e.index !== log.snapshotIndex + 1 + i) {
        throw new SafetyViolation(
          'log_matching',
          `${key} holds index ${e.index} at position ${log.snapshotIndex + 1 + i}`,
        );
      }
      const prevTerm = termAt(log, e.index - 1)!;
      const id = `${e.index}:${e.term}`;
      const known = this.entries.get(id);
      if (known === undefined) this.entries.set(id, { prevTerm, entry: e, by: key });
      else if (
        known.prevTerm !== prevTerm ||
        (known.entry !== e && JSON.stringify(fieldsOf(known.entry)) !== JSON.stringify(fieldsOf(e)))
      ) {
        throw new SafetyViolation('log_matching', `${key} disagrees on entry ${id}`);
      }
    }
    t.entries = log.entries;
    t.checkedLength = log.length;
    t.snapshotIndex = log.snapshotIndex;
    // Commitment never changes: record terms of newly committed entries
    if (s.commitIndex > t.commitIndex) {
      for (let i = Math.max(t.commitIndex + 1, log.snapshotIndex + 1); i <= s.commitIndex; i++) {
        const term = termAt(log, i);
        if (term === undefined) break;
        const known = this.committed.get(i);
        if (known === undefined) {
          this.committed.set(i, term);
          if (i > this.maxCommitted) this.maxCommitted = i;
        } else if (known !== term) {
          throw new SafetyViolation(
            'state_machine_safety',
            `${key} commits term ${term} at ${i}, was ${known}`,
          );
        }
      }
    }
    t.commitIndex = s.commitIndex;
    // Leader completeness: on becoming leader of a term, it holds every committed entry
    if (role === 'leader' && t.wasLeaderTerm !== s.currentTerm) {
      t.wasLeaderTerm = s.currentTerm;
      for (let i = log.snapshotIndex + 1; i <= this.maxCommitted; i++) {
        const c = this.committed.get(i);
        if (c !== undefined && termAt(log, i) !== c) {
          throw new SafetyViolation(
            'leader_completeness',
            `leader ${key} (term ${s.currentTerm}) lacks committed entry ${i}/${c}`,
          );
        }
      }
    }
    // State machine safety
    if (s.lastApplied !== t.lastApplied) {
      for (let i = Math.max(t.lastApplied + 1, log.snapshotIndex + 1); i <= s.lastApplied; i++) {
        const term = termAt(log, i)!;
        const known = this.applied.get(i);
        if (known === undefined) this.applied.set(i, term);
        else if (known !== term) {
          throw new SafetyViolation(
            'state_machine_safety',
            `${key} applied ${i}/${term}, another applied ${i}/${known}`,
          );
        }
      }
      t.lastApplied = s.lastApplied;
      const d = this.digest(s.machineState);
      const known = this.stateAt.get(s.lastApplied);
      if (known === undefined) this.stateAt.set(s.lastApplied, d);
      else if (known !== d) {
        throw new SafetyViolation(
          'state_machine_safety',
          `${key} machine state differs at applied index ${s.lastApplied}`,
        );
      }
    }
  }
}

/** An entry's fields as a plain object: a command kept as getters (the simulator's) reads the same. */
function fieldsOf(e: LogEntry): unknown {
  if (e.type !== 'command') return e;
  const { type, index, term, command, reply, systemTime, requestId } = e;
  return { type, index, term, command, reply, systemTime, requestId };
}
