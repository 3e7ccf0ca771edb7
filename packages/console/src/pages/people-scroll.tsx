// The people pages' tables scroll sideways on a narrow screen.
import type { ComponentChildren } from 'preact';

/**
 * A table that scrolls sideways on a narrow screen; focusable, so a keyboard can scroll it too (axe:
 * scrollable-region-focusable).
 */
export function Scroll(props: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
    // biome-ignore lint/a11y/useAriaPropsSupportedByRole: the label names the scrolling block for screen readers
    <div class="table-scroll" tabIndex={0} aria-label={props.label}>
      {props.children}
    </div>
  );
}
