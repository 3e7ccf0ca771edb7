// Erasing a person (right to be forgotten): a modal dialog that asks for the word ERASE before the
// DELETE goes out. The native <dialog> keeps focus inside and closes on Escape.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Field, useAction } from '../ui.tsx';

/** DELETE /api/profiles/{id}'s answer. */
export interface Erased {
  erasureId: string;
  profileIds: string[];
  identities: number;
  events: number;
}

const WORD = 'ERASE';

/** The "Erase…" button and its confirmation dialog. */
export function EraseButton(props: { id: string; label: string; onErased: (e: Erased) => void }) {
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const dialog = useRef<HTMLDialogElement>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const erase = useAction(() => api<Erased>(`/profiles/${props.id}`, { method: 'DELETE' }));

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);

  const close = () => {
    setOpen(false);
    setTyped('');
    opener.current?.focus();
  };
  const confirm = async (e: Event) => {
    e.preventDefault();
    if (typed !== WORD) return;
    const done = await erase.run();
    if (done) {
      setOpen(false);
      props.onErased(done);
    }
  };

  return (
    <>
      <button type="button" class="danger" ref={opener} onClick={() => setOpen(true)}>
        Erase…
      </button>
      <dialog ref={dialog} class="confirm" aria-labelledby="erase-title" onClose={close}>
        <form onSubmit={confirm}>
          <h2 id="erase-title">Erase {props.label}?</h2>
          <p>
            This deletes the person's profile, identities, traits, consent history, events, deliveries, flow runs and
            merge history for good, and suppresses their identities: later events carrying them are dropped. It cannot
            be undone.
          </p>
          <Field label={`Type ${WORD} to confirm`}>
            <input
              value={typed}
              autoComplete="off"
              onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
              autoFocus
            />
          </Field>
          <ErrorBox error={erase.error} />
          <p class="filters">
            <button type="submit" class="danger" disabled={typed !== WORD || erase.busy}>
              Erase permanently
            </button>
            <button type="button" onClick={close}>
              Cancel
            </button>
          </p>
        </form>
      </dialog>
    </>
  );
}
