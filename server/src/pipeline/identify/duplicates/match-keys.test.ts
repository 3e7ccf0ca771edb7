import { describe, expect, it } from 'vitest';
import { canonicalEmail, MATCHERS, normalizeName, phoneDigits, scoreOf } from './match-keys.ts';

describe('duplicate match keys', () => {
  it('gives email variants of one mailbox one key, and different mailboxes different ones', () => {
    const gmail = ['John.Smith@gmail.com', ' johnsmith+shop@googlemail.com ', 'JOHN.SMITH+x@GMAIL.COM'];
    expect(new Set(gmail.map(canonicalEmail))).toEqual(new Set(['johnsmith@gmail.com']));
    // Dots matter outside Gmail; +tags are sub-addresses everywhere.
    expect(canonicalEmail('john.smith@example.com')).not.toBe(canonicalEmail('johnsmith@example.com'));
    expect(canonicalEmail('ann+news@example.com')).toBe('ann@example.com');
    for (const bad of ['', 'no-at-sign', '@example.com', 'a b@example.com']) {
      expect(canonicalEmail(bad), bad).toBeNull();
    }
  });

  it('normalises names (accents, case, punctuation, word order) and phones (last 9 digits)', () => {
    expect(normalizeName('María García')).toBe(normalizeName('garcia, MARIA'));
    expect(normalizeName('Jane García')).not.toBe(normalizeName('María García'));
    expect(normalizeName(' -- ')).toBeNull();
    expect(phoneDigits('+44 20 7946 0018')).toBe(phoneDigits('020 7946 0018'));
    expect(phoneDigits('0044 (20) 7946-0018')).toBe('079460018');
    expect(phoneDigits('12345')).toBeNull();
  });

  it('pairs a name with each phone, and scores combined evidence above either alone', () => {
    const keys = MATCHERS.name_phone!.values({ emails: [], names: ['Ann Lee'], phones: ['+1 555 010 0999', 'n/a'] });
    expect(keys).toEqual(['ann lee|550100999']);
    expect(MATCHERS.name_phone!.values({ emails: [], names: ['Ann Lee'], phones: [] })).toEqual([]);
    expect(scoreOf(['email'])).toBe(90);
    expect(scoreOf(['name_phone'])).toBe(85);
    expect(scoreOf(['email', 'name_phone'])).toBeGreaterThan(90);
  });
});
