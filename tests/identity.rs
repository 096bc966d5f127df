//! Row identity as the source declares it: REPLICA IDENTITY USING INDEX on another unique
//! index than the primary key, and REPLICA IDENTITY FULL without a key with unchanged TOAST
//! values.

use crate::common;

use common::TestEnv;

#[test]
fn identity_index_other_than_the_primary_key_and_full_without_key() {
    let env = TestEnv::start("identity");
    env.sql(
        "CREATE TABLE coded (id int PRIMARY KEY, code text NOT NULL, v int);\n\
         CREATE UNIQUE INDEX coded_code ON coded (code);\n\
         ALTER TABLE coded REPLICA IDENTITY USING INDEX coded_code;\n\
         INSERT INTO coded SELECT g, 'c' || g, 0 FROM generate_series(1, 100) g;\n\
         CREATE TABLE docs (title text, body text);\n\
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n\
         ALTER TABLE docs REPLICA IDENTITY FULL;\n\
         INSERT INTO docs VALUES ('a', repeat('x', 50000)), ('b', repeat('y', 50000));",
    );
    let cfg = env.config("identity", &["public.*"]).write();
    let mut zetl = env.run_zetl(&cfg);
    env.wait_caught_up(&mut zetl, "identity");
    env.sql(
        "UPDATE coded SET v = v + 1 WHERE id <= 30;\n\
         UPDATE coded SET code = 'renamed' || id WHERE id BETWEEN 31 AND 40;\n\
         DELETE FROM coded WHERE id > 90;\n\
         UPDATE docs SET title = 'a2' WHERE title = 'a';\n\
         DELETE FROM docs WHERE title = 'b';",
    );
    env.wait_caught_up(&mut zetl, "identity");
    zetl.stop();
    env.assert_equal(&["public.coded", "public.docs"]);
}
