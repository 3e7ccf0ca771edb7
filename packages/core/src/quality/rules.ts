/**
 * Data-quality rules per trait: how values are normalised when they are folded in (stage 2 and bulk
 * import alike, through `TraitOptions.rules`), and how a missing value is filled (a default, or a
 * template over other traits), marked as derived.
 */
import { z } from 'zod';
import { parseTemplate } from '../flows/template.ts';
import { isCountryLanguage, type Normalized, type NormalizeStep, normalizeValue } from './normalize.ts';

const Step = z.discriminatedUnion('op', [
  z.object({ op: z.literal('trim') }).strict(),
  z.object({ op: z.literal('lower') }).strict(),
  z.object({ op: z.literal('upper') }).strict(),
  z
    .object({
      op: z.literal('date'),
      dayFirst: z.boolean().optional(),
      formats: z.array(z.string().min(1).max(60)).max(10).optional(),
    })
    .strict(),
  z
    .object({
      op: z.literal('country'),
      languages: z
        .array(z.string().refine(isCountryLanguage, 'not a language i18n-iso-countries knows (ISO 639-1)'))
        .min(1)
        .max(10)
        .optional(),
    })
    .strict(),
  z
    .object({
      op: z.literal('phone'),
      defaultCallingCode: z
        .string()
        .regex(/^\+?\d{1,4}$/, 'a calling code such as "44"')
        .optional(),
    })
    .strict(),
]);

const Fill = z.union([
  z
    .object({ default: z.json().refine((v) => v !== null && v !== '', 'a default must be a value (not null or "")') })
    .strict(),
  z
    .object({
      template: z
        .string()
        .min(1)
        .max(500)
        .superRefine((text, ctx) => {
          const { variables, errors } = parseTemplate(text);
          for (const e of errors) ctx.addIssue({ code: 'custom', message: e });
          if (!variables.length) ctx.addIssue({ code: 'custom', message: 'reads no trait: use {{ traits.<key> }}' });
          for (const v of variables) {
            if (v.root !== 'traits' || !v.path.length)
              ctx.addIssue({ code: 'custom', message: `{{ ${v.source} }}: only {{ traits.<key> }} can be read here` });
          }
        }),
    })
    .strict(),
]);

/** The JSON of one trait's rule, as the admin API takes it (zod). */
export const TraitQualityRuleSchema = z
  .object({
    normalize: z.array(Step).max(10).default([]),
    fill: Fill.nullable().default(null),
  })
  .strict()
  .refine((r) => r.normalize.length > 0 || r.fill !== null, 'give normalize steps, a fill, or both');

/** One trait's rule. */
export interface TraitQualityRule {
  readonly normalize: readonly NormalizeStep[];
  /** A default value, or a template over other traits (`{{ traits.first_name }} {{ traits.last_name }}`). */
  readonly fill: { default: unknown } | { template: string } | null;
}

/** A fill rule of one trait, ready to apply. */
export interface CompiledFill {
  readonly key: string;
  readonly fill: NonNullable<TraitQualityRule['fill']>;
  /** The traits a template reads (its inputs); empty for a default. */
  readonly inputs: readonly string[];
}

/** The rules of every trait, compiled for the fold (`TraitOptions.rules`). */
export interface TraitQualityRules {
  /** The rule's normalisation of `key`'s value, or undefined when the trait has no steps. */
  normalize(key: string, value: unknown, defaultCallingCode?: string): Normalized | undefined;
  /** Fill rules, in key order (a fill may read a derived trait filled before it). */
  readonly fills: readonly CompiledFill[];
}

/**
 * The traits a template reads, by key.
 *
 * @example
 * templateInputs('{{ traits.first_name }} {{ traits.last_name }}'); // ['first_name', 'last_name']
 */
export function templateInputs(template: string): string[] {
  return [...new Set(parseTemplate(template).variables.map((v) => v.path[0]!))];
}

/**
 * Compiles rules by trait key for the fold. A fill whose template reads its own trait is refused
 * when the rules are saved (see the admin API); here it simply never fills.
 *
 * @example
 * const rules = compileTraitRules({ country: { normalize: [{ op: 'country' }], fill: null } });
 * foldEvents(state, events, { rules });
 */
export function compileTraitRules(byKey: Readonly<Record<string, TraitQualityRule>>): TraitQualityRules {
  const steps = new Map<string, readonly NormalizeStep[]>();
  const fills: CompiledFill[] = [];
  for (const key of Object.keys(byKey).sort()) {
    const rule = byKey[key]!;
    if (rule.normalize.length) steps.set(key, rule.normalize);
    if (rule.fill) {
      const inputs = 'template' in rule.fill ? templateInputs(rule.fill.template) : [];
      if (!inputs.includes(key)) fills.push({ key, fill: rule.fill, inputs });
    }
  }
  return {
    normalize(key, value, defaultCallingCode) {
      const s = steps.get(key);
      return s ? normalizeValue(s, value, defaultCallingCode) : undefined;
    },
    fills,
  };
}
