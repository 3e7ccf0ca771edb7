export { adjustedRandIndex } from './ari.ts';
export {
  type ClusterDescription,
  type ClusteringOptions,
  type ClusteringResult,
  clusterPoints,
  DEFAULT_K_RANGE,
} from './cluster.ts';
export {
  chooseK,
  DEFAULT_FIT_SAMPLE,
  DEFAULT_SILHOUETTE_SAMPLE,
  type FitOptions,
  fitKMeans,
  type KMeansFit,
  silhouette,
} from './kmeans.ts';
export { matchIds, minCostAssignment } from './match.ts';
export { assignNearest, type Points, pointsOf, sampleIndices, seededRandom } from './matrix.ts';
export { fitScaler, type Scaler, standardise, toOriginal, toStandard } from './standardise.ts';
