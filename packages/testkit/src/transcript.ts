import type { LogEntry } from '@otra/protocol';
import type { Effect, Message } from '@otra/raft-core';

function entries(es: readonly LogEntry[]): string {
  if (es.length === 0) return '[]';
  if (es.length <= 4)
    return `[${es.map((e) => `${e.index}/${e.term}${e.type === 'command' ? '' : `:${e.type}`}`).join(' ')}]`;
  return `[${es[0]!.index}/${es[0]!.term}..${es[es.length - 1]!.index}/${es[es.length - 1]!.term}]`;
}

/** One readable line per message, as etcd's `testdata/*.txt` interaction traces. */
export function describeMessage(m: Message): string {
  switch (m.type) {
    case 'append_entries.request':
      return `${m.type} term=${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} entries=${entries(m.entries)} commit=${m.leaderCommit}`;
    case 'append_entries.reply':
      return `${m.type} term=${m.term} ${m.success ? `ok match=${m.matchIndex}` : `reject last=${m.lastIndex}/${m.lastTerm}`}`;
    case 'vote.request':
    case 'pre_vote.request':
      return `${m.type} term=${m.term} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'vote.reply':
    case 'pre_vote.reply':
      return `${m.type} term=${m.term} ${m.granted ? 'granted' : 'refused'}`;
    case 'install_snapshot.request':
      return `${m.type} term=${m.term} snapshot=${m.meta.index}/${m.meta.term} chunk=${m.chunk}${m.last ? ' last' : ''}`;
    case 'install_snapshot.reply':
      return `${m.type} term=${m.term} snapshot=${m.meta.index} ${m.done ? 'done' : `chunk=${m.chunk}`}`;
    case 'timeout_now':
    case 'leader_probe':
      return `${m.type} term=${m.term}`;
    case 'command':
      return `command ${JSON.stringify(m.command)} ${m.reply.mode}`;
    case 'commands':
      return `commands n=${m.commands.length}`;
    case 'query':
      return `query ${m.kind}`;
    case 'log.written':
      return `log.written ${m.upTo}/${m.term}`;
    default:
      return m.type;
  }
}

/** One line per effect, for unit-test failure messages and transcripts. */
export function describeEffect(e: Effect): string {
  switch (e.type) {
    case 'send_rpc':
      return `send ${e.to.name} ${describeMessage(e.rpc)}`;
    case 'log.append':
      return `log.append ${entries(e.entries)}${e.truncateFrom === undefined ? '' : ` truncateFrom=${e.truncateFrom}`}`;
    case 'meta.persist':
      return `meta.persist term=${e.currentTerm} votedFor=${e.votedFor?.name ?? '-'}`;
    case 'reply':
      return `reply ${JSON.stringify(e.reply)}`;
    default:
      return e.type;
  }
}
