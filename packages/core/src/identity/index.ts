export { diffPartitions, type GroupOrigin, type MergeChange, type PartitionDiff, type SplitChange } from './diff.ts';
export { extractIdentities, normalizeIdentity, normalizePhone } from './extract.ts';
export {
  compareRefs,
  compareSurvivors,
  type Group,
  type IdentityLink,
  type LinkRef,
  type MergeStep,
  type Partition,
  type Refusal,
  resolveIdentities,
} from './resolve.ts';
export {
  compareIdentities,
  compareStrings,
  DEFAULT_BLOCKED,
  DEFAULT_IDENTITY_LIMIT,
  DEFAULT_USER_ID_LIMIT,
  type Identity,
  type IdentityOptions,
  type IdentityType,
  identityKey,
  identityOptionsSchema,
  limitOf,
  parseIdentityOptions,
} from './types.ts';
