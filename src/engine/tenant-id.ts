import { hasLoneSurrogate } from '../core/show-value.js';

export const MAX_TENANT_ID = 128;

/**
 * Whether `id` can name a tenant. Tenant ids become unit-name segments (`kv/<id>`, `log/<id>/...`):
 * a '/' would let one tenant's units collide with another's, and so would a lone surrogate
 * (UTF-8 stores every one as U+FFFD).
 */
export function isTenantId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_TENANT_ID && !/[/\u0000-\u001f\u007f]/.test(id) && !hasLoneSurrogate(id);
}
