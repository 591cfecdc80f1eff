/** What topic-delete-child.ts sets up and its test checks. */
export const TENANT = 't1';
/** Deleted by the child, which is killed before the groups' offsets for it are dropped. */
export const DOOMED = 'doomed';
export const KEPT = 'kept';
