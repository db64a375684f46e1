// The shape of a config schema, and the TypeScript type a schema describes. Sections are written
// `as const satisfies ObjectSpec`, so ConfigOf can read every key, kind and default at compile time:
// the type of a section is derived from its schema, never written beside it.

export type FieldKind = 'string' | 'duration' | 'bytes' | 'bool' | 'enum' | 'stringList' | 'stringMap' | 'int';

export interface LeafSpec {
  kind: FieldKind;
  default?: unknown;
  values?: readonly string[];
  env?: string;
  doc: string;
  secret?: boolean;
  /** Must be given (a target's url): a missing value is a config error. */
  required?: boolean;
  /** Has no fixed default but is always set after config is built (from other keys). */
  derived?: boolean;
  /** stringMap only: what the keys are, which decides what a valid key is. Default: Prometheus label names. */
  keys?: 'label' | 'attribute' | 'header';
}
export interface ObjectSpec {
  kind: 'object';
  fields: Readonly<Record<string, Spec>>;
  doc?: string;
  /** Left out of the config when not given (auth blocks), instead of filled with defaults. */
  optional?: boolean;
}
export interface ListSpec {
  kind: 'list';
  item: ObjectSpec;
  default: readonly unknown[];
  doc: string;
}
export type Spec = LeafSpec | ObjectSpec | ListSpec;

type LeafType<S> = S extends { kind: 'string' }
  ? string
  : S extends { kind: 'duration' | 'bytes' | 'int' }
    ? number
    : S extends { kind: 'bool' }
      ? boolean
      : S extends { kind: 'enum'; values: readonly (infer V)[] }
        ? V
        : S extends { kind: 'stringList' }
          ? string[]
          : S extends { kind: 'stringMap' }
            ? Record<string, string>
            : never;

/** Whether a key always has a value once config is built. */
type Present<S> = S extends { kind: 'object'; optional: true }
  ? false
  : S extends { kind: 'object' | 'list' }
    ? true
    : S extends { default: unknown }
      ? true
      : S extends { required: true } | { derived: true }
        ? true
        : false;

type Fields<F> = { -readonly [K in keyof F as Present<F[K]> extends true ? K : never]: ConfigOf<F[K]> } & {
  -readonly [K in keyof F as Present<F[K]> extends true ? never : K]?: ConfigOf<F[K]>;
};

type Flat<T> = { [K in keyof T]: T[K] } & {};

/** The validated value a schema node describes: durations in ms, sizes in bytes. */
export type ConfigOf<S> = S extends { kind: 'object'; fields: infer F }
  ? Flat<Fields<F>>
  : S extends { kind: 'list'; item: infer I }
    ? ConfigOf<I>[]
    : LeafType<S>;
