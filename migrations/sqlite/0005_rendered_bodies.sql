-- Bodies are rendered to sanitized HTML once, when written, and the HTML is stored beside
-- the source (issue 22): reads never render. NULL marks a row written before this column;
-- it is rendered on its first read and the HTML stored then.
ALTER TABLE articles ADD COLUMN body_html TEXT;
ALTER TABLE comments ADD COLUMN body_html TEXT;
