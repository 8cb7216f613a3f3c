/* fuzz_xml.c: iw_xml_parse on arbitrary bytes (the hardened reply parser), then the lookups
 * adapters run on a parsed reply; a refusal always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "xml.h"
#include "fuzz_utf8.h"

static size_t visited;

static void walk(xmlNodePtr n, int depth)
{
    char small[8], big[256];
    for (; n && depth < 64; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        size_t l = iw_xml_text(n, small, sizeof(small));
        if (l >= sizeof(small) || strlen(small) != l)
            iw_fuzz_fail("iw_xml_text: returned length does not fit", small, sizeof(small));
        IW_FUZZ_REQUIRE_UTF8("iw_xml_text into 8 bytes", small, sizeof(small));
        l = iw_xml_text(n, big, sizeof(big));
        if (l >= sizeof(big))
            iw_fuzz_fail("iw_xml_text: returned length does not fit", big, sizeof(big));
        IW_FUZZ_REQUIRE_UTF8("iw_xml_text into 256 bytes", big, sizeof(big));
        if (++visited > 2000)
            return; /* enough of one document: every visit copies the subtree's text */
        walk(n->children, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    err[0] = '\0';
    xmlDocPtr doc = iw_xml_parse((const char *)data, size, err, sizeof(err));
    if (!doc) {
        if (!err[0] || strnlen(err, sizeof(err)) == sizeof(err))
            iw_fuzz_fail("a refusal says why", NULL, 0);
        IW_FUZZ_REQUIRE_UTF8("the refusal", err, sizeof(err));
        return 0;
    }
    if (doc->intSubset && doc->intSubset->entities)
        iw_fuzz_fail("a document declaring entities was handed out", NULL, 0);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    (void)iw_xml_find(root, "Body");
    (void)iw_xml_find(root, "Fault");
    visited = 0;
    walk(root, 0);
    xmlFreeDoc(doc);
    return 0;
}
