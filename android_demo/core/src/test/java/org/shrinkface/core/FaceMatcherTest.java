package org.shrinkface.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class FaceMatcherTest {
    @Test
    public void cosineOfKnownVectors() {
        assertEquals(1 / Math.sqrt(2), FaceMatcher.cosine(new float[] {1, 0}, new float[] {3, 3}), 1e-12);
        assertEquals(-1, FaceMatcher.cosine(new float[] {2, -1}, new float[] {-4, 2}), 1e-12);
        assertEquals(0, FaceMatcher.cosine(new float[] {0, 5}, new float[] {7, 0}), 0);
        float[] unit = FaceMatcher.l2Normalize(new float[] {3, 4});
        assertEquals(0.6f, unit[0], 1e-7f);
        assertEquals(0.8f, unit[1], 1e-7f);
        assertThrows(IllegalArgumentException.class, () -> FaceMatcher.l2Normalize(new float[] {0, 0}));
        assertThrows(IllegalArgumentException.class, () -> FaceMatcher.cosine(new float[] {1}, new float[] {1, 2}));
    }

    @Test
    public void verifyDecidesAtTheThresholdInclusive() {
        FaceMatcher matcher = new FaceMatcher(2, 0.6, FaceMatcher.Reduce.MAX);
        // cos = 0.6 exactly for (1, 0)·(0.6, 0.8): at the threshold is a match, as in Python (score >= threshold).
        assertTrue(matcher.verify(new float[] {1, 0}, new float[] {3, 4}).accepted);
        FaceMatcher.Match no = matcher.verify(new float[] {1, 0}, new float[] {0.5f, 0.8660254f});
        assertFalse(no.accepted);
        assertEquals(0.5, no.score, 1e-6);
        assertNull(no.label);
    }

    /** The gallery of runtime/decide.py's check: bob has two templates. Expected scores printed by Python. */
    private static FaceMatcher gallery(FaceMatcher.Reduce reduce, double threshold) {
        FaceMatcher m = new FaceMatcher(3, threshold, reduce);
        m.enroll("bob", new float[] {1, 0, 0});
        m.enroll("ada", new float[] {0, 1, 0});
        m.enroll("bob", new float[] {0.6f, 0.8f, 0});
        m.enroll("cy", new float[] {0, 0, -1});
        return m;
    }

    @Test
    public void identifyAndVerifyMatchPythonDecide() {
        float[] q = {0.2f, 0.9f, 0.1f};
        // identify(ts, q, 0.5, "max"): ada 0.970495; verify(ts, q, "bob", 0.8, "max"): 0.905795 accepted
        FaceMatcher.Match best = gallery(FaceMatcher.Reduce.MAX, 0.5).identify(q);
        assertEquals("ada", best.label);
        assertEquals(0.970495, best.score, 1e-6);
        assertTrue(best.accepted);
        FaceMatcher.Match bobMax = gallery(FaceMatcher.Reduce.MAX, 0.8).verify("bob", q);
        assertEquals(0.905795, bobMax.score, 1e-6);
        assertTrue(bobMax.accepted);
        // "mean": bob 0.56073 rejected at 0.8
        FaceMatcher.Match bobMean = gallery(FaceMatcher.Reduce.MEAN, 0.8).verify("bob", q);
        assertEquals(0.56073, bobMean.score, 1e-5);
        assertFalse(bobMean.accepted);
        assertEquals(2, gallery(FaceMatcher.Reduce.MAX, 0.5).templates().get("bob").size());
    }

    @Test
    public void identifyRejectsButNamesTheCandidateAndBreaksTiesByName() {
        FaceMatcher m = gallery(FaceMatcher.Reduce.MAX, 0.99);
        FaceMatcher.Match far = m.identify(new float[] {0.2f, 0.9f, 0.1f});
        assertEquals("ada", far.label);
        assertFalse(far.accepted);
        FaceMatcher tie = new FaceMatcher(2, 0.5, FaceMatcher.Reduce.MAX);
        tie.enroll("zed", new float[] {1, 0});
        tie.enroll("amy", new float[] {1, 0});
        assertEquals("amy", tie.identify(new float[] {1, 0}).label); // Python: candidate 'amy'
        assertTrue(tie.remove("amy"));
        assertEquals("zed", tie.identify(new float[] {1, 0}).label);
    }

    @Test
    public void refusesWhatItCannotServe() {
        FaceMatcher matcher = new FaceMatcher(4, 0.3, FaceMatcher.Reduce.MAX);
        assertThrows(GalleryException.class, () -> matcher.identify(new float[] {1, 0, 0, 0}));
        matcher.enroll("ada", new float[] {1, 0, 0, 0});
        GalleryException wrongSize = assertThrows(GalleryException.class, () -> matcher.identify(new float[] {1, 0}));
        assertTrue(wrongSize.getMessage().contains("another model"));
        assertThrows(GalleryException.class, () -> matcher.identify(new float[] {0, 0, 0, 0}));
        assertThrows(GalleryException.class, () -> matcher.identify(new float[] {Float.NaN, 0, 0, 0}));
        GalleryException absent = assertThrows(GalleryException.class, () -> matcher.verify("bob", new float[] {1, 0, 0, 0}));
        assertTrue(absent.getMessage().contains("enrolled: [ada]"));
        assertThrows(IllegalArgumentException.class, () -> new FaceMatcher(4, 1.5, FaceMatcher.Reduce.MAX));
        ModelCard uncalibrated = ModelCard.fromJson("{\"name\":\"m\",\"embedding_size\":4}");
        assertThrows(ModelCardException.class, () -> new FaceMatcher(uncalibrated));
        ModelCard calibrated = ModelCard.fromJson("{\"name\":\"m\",\"embedding_size\":4,\"threshold\":0.42}");
        assertEquals(0.42, new FaceMatcher(calibrated).threshold(), 0);
        matcher.clear();
        assertTrue(matcher.templates().isEmpty());
    }
}
