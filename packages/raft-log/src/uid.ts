import { randomBytes } from 'node:crypto';
import { checkUid } from './internal/keys.ts';

/**
 * A fresh server uid: the server's name plus 8 random bytes (`kv_1f2e3d4c5b6a7988`). Stored data
 * is keyed by uid, never by name, so a cluster re-created under the same name never reads the old
 * one's entries. The name part keeps `[A-Za-z0-9._:@-]` and is cut to 100 characters.
 */
export function newServerUid(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._:@-]/g, '_').slice(0, 100);
  const uid = `${/^[A-Za-z0-9]/.test(safe) ? safe : `s${safe}`}_${randomBytes(8).toString('hex')}`;
  checkUid(uid);
  return uid;
}
