// One person: identities, traits (when and from which event), consent and subscriptions, tags, audiences
// (with why), merges (with unmerge), a timeline of events, deliveries and flow runs; erase with a
// confirmation. PII comes masked from the server for roles without pii:read.
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api.ts';
import { Link, navigate } from '../router.tsx';
import { ErrorBox, PageHeader, Time, useApi, useCan } from '../ui.tsx';
import { Audiences, Merges } from './people-audiences.tsx';
import { EraseButton, type Erased } from './people-erase.tsx';
import { Consent, Identities, Subscriptions, Tags, Traits } from './people-facts.tsx';
import { Timeline } from './people-timeline.tsx';
import { labelOf, type Profile } from './people-types.ts';

export default function Person(props: { params: Record<string, string> }) {
  const id = props.params.id ?? '';
  // Bumped after an unmerge: every section loads again.
  const [rev, setRev] = useState(0);
  const [erased, setErased] = useState<Erased>();
  const state = useApi<Profile>(`/profiles/${encodeURIComponent(id)}?rev=${rev}`);
  const canErase = useCan('profiles:erase');
  const profile = state.data;

  // A merged-away id answers with the person it became (the API redirects): show that person's address.
  useEffect(() => {
    if (profile && profile.id !== id) navigate(`/people/${profile.id}`, { replace: true });
  }, [profile?.id, id]);

  if (erased || (state.error instanceof ApiError && state.error.status === 410)) {
    return <ErasedNotice id={id} erased={erased} />;
  }
  if (state.error) {
    return (
      <>
        <PageHeader title="Person">
          <Link href="/people">Back to people</Link>
        </PageHeader>
        <ErrorBox error={state.error} />
      </>
    );
  }
  if (!profile || profile.id !== id) {
    return (
      <>
        <PageHeader title="Person" />
        <p aria-busy="true">Loading…</p>
      </>
    );
  }
  return (
    <>
      <PageHeader title={labelOf(profile)}>
        <Link href="/people">Back to people</Link>
        {canErase && <EraseButton id={id} label={labelOf(profile)} onErased={setErased} />}
      </PageHeader>
      <p class="muted">
        Profile <code>{profile.id}</code> · first seen <Time at={profile.createdAt} /> · last change{' '}
        <Time at={profile.updatedAt} />
      </p>
      <div key={rev}>
        <div class="cols">
          <Identities profile={profile} />
          <Consent profile={profile} />
          <Audiences id={id} />
        </div>
        <Traits profile={profile} />
        <div class="cols">
          <Subscriptions id={id} />
          <Tags id={id} />
        </div>
      </div>
      <Merges key={`m${rev}`} id={id} onUnmerged={() => setRev((r) => r + 1)} />
      <Timeline key={`t${rev}`} id={id} />
    </>
  );
}

function ErasedNotice(props: { id: string; erased?: Erased }) {
  return (
    <>
      <PageHeader title="Person erased">
        <Link href="/people">Back to people</Link>
      </PageHeader>
      <div role="status" class="card">
        <p>
          <strong>This person was erased.</strong> Profile <code>{props.id}</code> and everything recorded about it
          (identities, traits, consent, events, deliveries, flow runs, merges) is gone.
        </p>
        {props.erased && (
          <p>
            {props.erased.identities} {props.erased.identities === 1 ? 'identity' : 'identities'} suppressed,{' '}
            {props.erased.events} {props.erased.events === 1 ? 'event' : 'events'} deleted. Later events carrying these
            identities are dropped and counted; destinations were told (<code>profile.erased</code>).
          </p>
        )}
      </div>
    </>
  );
}
