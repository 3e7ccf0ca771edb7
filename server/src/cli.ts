import { listMigrations } from './db/migrate.ts';

// `npm run cairn -- migrations` prints every migration in the order the server applies them, so an
// operator can review or apply the SQL by hand.
const [command] = process.argv.slice(2);
if (command === 'migrations') {
  for (const m of await listMigrations()) {
    process.stdout.write(`-- migration ${String(m.version).padStart(4, '0')}: ${m.name}\n${m.sql.trimEnd()}\n\n`);
  }
} else {
  process.stderr.write('usage: cairn migrations   print the SQL migrations in order\n');
  process.exit(command ? 2 : 0);
}
