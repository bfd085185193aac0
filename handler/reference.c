/*
 * reference.c: the reference of the configuration keys (see
 * reference.h).  The build runs `podio-webhook config --reference=man`
 * to make the key list of podio-webhook.conf(5), and `make
 * configuration-md` the one of CONFIGURATION.md, so that a key is
 * documented where it is defined: its row in lib/config.c.
 *
 * The help texts are plain text in which `...` marks literal text (a
 * key, a value, a command): bold in roff, a code span in Markdown.
 */
#include <config.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "podio.h"
/* lib/'s config.h, not the build's <config.h> of the same name. */
#include "../lib/config.h"
#include "reference.h"

/* Normally set by the build (the default spool and token cache). */
#ifndef PODIO_STATEDIR
#define PODIO_STATEDIR "/var/lib/podio-webhook"
#endif

/* What the build substitutes for the state directory. */
#define REFERENCE_STATEDIR "@podio_statedir@"

/* The name of a value type, as the reference says it. */
static const char *
reference_type_name(enum podio__cfg_type type)
{
	switch (type) {
	case PODIO__CFG_SECRET:   return "secret string";
	case PODIO__CFG_DURATION: return "duration";
	case PODIO__CFG_SIZE:     return "size";
	case PODIO__CFG_INT:      return "integer";
	case PODIO__CFG_BOOL:     return "yes or no";
	case PODIO__CFG_U64LIST:  return "list of ids";
	case PODIO__CFG_STRING:
	default:                  return "string";
	}
}

/*
 * Splits a default into the part the build substitutes and the rest:
 * *rest is def past the compiled-in state directory when def starts with
 * it (returns 1), else def itself (returns 0).
 */
static int
reference_statedir(const char *def, const char **rest)
{
	size_t n = strlen(PODIO_STATEDIR);

	if (n > 0 && strncmp(def, PODIO_STATEDIR, n) == 0 &&
	    (def[n] == '/' || def[n] == '\0')) {
		*rest = def + n;
		return 1;
	}
	*rest = def;
	return 0;
}

/* ------------------------------------------------------------ roff */

/* Prints text escaped for roff, not at the start of a line. */
static void
reference_roff_text(FILE *fp, const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (text[i] == '\\')
			fputs("\\e", fp);
		else if (text[i] == '-')
			fputs("\\-", fp);
		else
			fputc(text[i], fp);
	}
}

/* Prints help as one roff text line: `...` in bold.  A line never starts
 * with a control character: it opens with "\&". */
static void
reference_roff_help(FILE *fp, const char *help)
{
	const char *p = help, *end;

	fputs("\\&", fp);
	while (*p != '\0') {
		if (*p == '`' && (end = strchr(p + 1, '`')) != NULL) {
			fputs("\\fB\\%", fp);
			reference_roff_text(fp, p + 1, (size_t)(end - p - 1));
			fputs("\\fR", fp);
			p = end + 1;
			continue;
		}
		end = strchr(p, '`');
		if (end == NULL)
			end = p + strlen(p);
		else if (strchr(end + 1, '`') == NULL)
			end = p + strlen(p); /* a lone backtick is text */
		reference_roff_text(fp, p, (size_t)(end - p));
		p = end;
	}
	fputc('\n', fp);
}

/* The environment variable of key, PODIO_ and the name in upper case. */
static void
reference_env_name(const char *name, char *out, size_t outlen)
{
	size_t i, n;

	n = (size_t)snprintf(out, outlen, "PODIO_%s", name);
	if (n >= outlen)
		n = outlen - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* One key as a roff tagged paragraph. */
static void
reference_roff_key(FILE *fp, const struct podio__cfg_key_info *k)
{
	const char *rest;
	char env[96];

	reference_env_name(k->name, env, sizeof(env));
	fputs(".TP\n.B ", fp);
	reference_roff_text(fp, k->name, strlen(k->name));
	fprintf(fp, "\n\\fI%s\\fR", reference_type_name(k->type));
	if (k->def == NULL) {
		fputs(", unset by default", fp);
	} else {
		/* \% : no hyphenation inside a value */
		fputs(", default \\fB\\%", fp);
		if (reference_statedir(k->def, &rest))
			fputs(REFERENCE_STATEDIR, fp);
		reference_roff_text(fp, rest, strlen(rest));
		fputs("\\fR", fp);
	}
	if (k->type == PODIO__CFG_SECRET)
		fputs(" (never printed: \\fBconfig\\fR shows \\fB(set)\\fR)",
		    fp);
	fputs("; environment \\fB\\%", fp);
	reference_roff_text(fp, env, strlen(env));
	fputs("\\fR.\n.br\n", fp);
	reference_roff_help(fp, k->help);
}

/* ------------------------------------------------------------ Markdown */

/* Prints text escaped for Markdown outside code spans. */
static void
reference_md_text(FILE *fp, const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (strchr("\\*_<>[]|", text[i]) != NULL)
			fputc('\\', fp);
		fputc(text[i], fp);
	}
}

/* Prints help as one Markdown paragraph: `...` stays a code span. */
static void
reference_md_help(FILE *fp, const char *help)
{
	const char *p = help, *end;

	while (*p != '\0') {
		if (*p == '`' && (end = strchr(p + 1, '`')) != NULL) {
			fwrite(p, 1, (size_t)(end - p + 1), fp);
			p = end + 1;
			continue;
		}
		end = strchr(p, '`');
		if (end == NULL || strchr(end + 1, '`') == NULL)
			end = p + strlen(p);
		reference_md_text(fp, p, (size_t)(end - p));
		p = end;
	}
	fputc('\n', fp);
}

/* One key as a Markdown section (its heading is its anchor). */
static void
reference_md_key(FILE *fp, const struct podio__cfg_key_info *k)
{
	const char *rest;
	char env[96];
	int sub;

	reference_env_name(k->name, env, sizeof(env));
	fprintf(fp, "### `%s`\n\n*%s*", k->name,
	    reference_type_name(k->type));
	if (k->def == NULL) {
		fputs(", unset by default", fp);
	} else {
		sub = reference_statedir(k->def, &rest);
		fprintf(fp, ", default `%s%s`", sub ? REFERENCE_STATEDIR : "",
		    rest);
	}
	if (k->type == PODIO__CFG_SECRET)
		fputs(" (never printed: `config` shows `(set)`)", fp);
	fprintf(fp, "; environment `%s`.\n\n", env);
	reference_md_help(fp, k->help);
}

/* See reference.h. */
int
reference_print(FILE *fp, const char *format)
{
	struct podio__cfg_key_info k;
	size_t i;
	int md;

	if (strcmp(format, "man") == 0)
		md = 0;
	else if (strcmp(format, "md") == 0)
		md = 1;
	else
		return -1;
	for (i = 0; podio__config_key_info(i, &k) == 0; i++) {
		if (md && i > 0)
			fputc('\n', fp);
		if (md)
			reference_md_key(fp, &k);
		else
			reference_roff_key(fp, &k);
	}
	return 0;
}
