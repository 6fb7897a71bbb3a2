import type { ChildSpec, From, GenServer } from '@otra/actors';
import { type AnyMachineModule, type MachineRole, toModule } from '@otra/raft-core';
import type { ServerRecord, SystemRuntime } from './runtime.ts';
import { type AuxView, auxName } from './server.ts';

interface AuxState {
  readonly machine: AnyMachineModule;
  auxState: unknown;
  handled: number;
}

/**
 * The aux actor (ra's `ra_aux`): runs the machine's `handleAux` off the Raft critical path. It gets
 * each `aux` effect (and each `auxCommand` from the API, which it answers with `handleAux`'s second
 * element) with a read-only view of the server (role, machine state, indexes); what it returns is
 * its own state, never written to the log.
 */
function auxBehaviour(sys: SystemRuntime): GenServer<AuxState, ServerRecord> {
  return {
    init(record) {
      const spec = sys.machines.get(record.module);
      if (spec === undefined) throw new Error(`machine module not registered: ${record.module}`);
      const machine = toModule(spec.machine) as AnyMachineModule;
      return { machine, auxState: machine.initAux?.(record.id.name), handled: 0 };
    },
    handleInfo(msg, state, ctx) {
      const m = msg as { type?: unknown; command?: unknown; view?: AuxView; from?: From };
      if (m?.type !== 'aux.command' || m.view === undefined) return state;
      if (state.machine.handleAux === undefined) {
        if (m.from !== undefined)
          ctx.reply(m.from, {
            type: 'error',
            error: 'invalid_request',
            message: 'the machine has no handleAux',
            leader: m.view.leader,
          });
        return state;
      }
      const [next, reply] = state.machine.handleAux(
        m.view.role as MachineRole,
        m.command,
        state.auxState,
        m.view.machineState,
      );
      state.auxState = next;
      state.handled++;
      if (m.from !== undefined) ctx.reply(m.from, { type: 'aux', reply: reply ?? null });
      return state;
    },
    describe: (state) => ({ handled: state.handled }),
  };
}

export function auxSpec(sys: SystemRuntime, record: ServerRecord): ChildSpec {
  return {
    id: 'aux',
    restart: 'permanent',
    shutdown: 1000,
    start: (ctx) => ctx.spawn(auxBehaviour(sys), record, { name: auxName(record.id.name) }),
  };
}
