export {
  type ConsentPolicy,
  consentDecision,
  consentFromEvent,
  DEFAULT_CONSENT_POLICY,
  DEFAULT_PURPOSES,
} from './consent.ts';
export {
  compareTraitEvents,
  DIRECT_REFERRER,
  emptyProfileState,
  foldEvent,
  foldEvents,
  type GroupMembership,
  normalizeTrait,
  type ProfileState,
  type TraitEvent,
  type TraitOp,
  type TraitOptions,
  type TraitSource,
  type TraitValue,
  traitOps,
} from './traits.ts';
