// Stage 3's public surface: what the server, the admin API and the audit log may use. Everything else in this
// folder is the stage's own (biome's noRestrictedImports keeps api/ and audit/ to this file).

export {
  CLUSTERING_QUEUE,
  executeClusteringRun,
  featureName,
  requestClusteringRun,
  syncClusteringSchedule,
} from './clustering.ts';
export {
  type Clustering,
  type ClusteringFeature,
  type ClusteringFields,
  type ClusteringRun,
  deleteClustering,
  getClustering,
  getRun,
  insertClustering,
  listClusterings,
  listRuns,
  updateClustering,
} from './clustering-queries.ts';
export {
  type AudienceRecord,
  type ComputedTraitRecord,
  type ComputedTraitRow,
  compilePattern,
  computedTraitDefinition,
  computedValuesOf,
  deleteAudience,
  deleteComputedTrait,
  deleteTag,
  getComputedTrait,
  getTag,
  insertAudience,
  insertComputedTrait,
  insertTag,
  listComputedTraits,
  listTags,
  type TagRecord,
  type TagRow,
  tagDefinition,
  tagHistory,
  updateAudience,
  updateComputedTrait,
  updateTag,
} from './definition-queries.ts';
export { dependencyOrder, nodeName, readsOf } from './definitions.ts';
export { type ExplainedNode, evaluateRule, explainRule } from './evaluate.ts';
export { audiencesOfProfile, type PersonAudience } from './profile-audiences.ts';
export {
  type AudienceRow,
  allRules,
  audienceCounts,
  dailyMemberCounts,
  getAudience,
  listAudiences,
  membershipHistory,
  membersPage,
  rulesReading,
} from './queries.ts';
export { type ComputeStage, createComputeStage } from './stage.ts';
